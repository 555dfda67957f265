/* The pages' one polling loop: run `step` now and then until it says there is nothing left to
   follow; a failed step (network, server restart) is tried again, more slowly. */
"use strict";
window.EduMood = window.EduMood || {};

EduMood.POLL_MS = 1500; // jobs and photos write their progress about once a second

EduMood.poll = function (step) {
  let timer = null;
  async function run() {
    timer = null;
    let delay = EduMood.POLL_MS;
    try {
      if (!(await step())) return;
    } catch (error) {
      delay = 3 * EduMood.POLL_MS;
    }
    schedule(delay);
  }
  function schedule(delay) {
    if (!timer) timer = setTimeout(run, delay === undefined ? EduMood.POLL_MS : delay);
  }
  return { schedule };
};
