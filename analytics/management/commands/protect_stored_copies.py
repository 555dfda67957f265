"""Make every blurred copy again with the current transform (ml.privacy)."""

from django.core.management.base import BaseCommand, CommandError

from analytics.choices import ImageState
from analytics.models import Photo
from analytics.services import protect_stored_copy
from ml.errors import MLError
from ml.privacy import VERSION


class Command(BaseCommand):
    help = (
        "Replace every stored blurred copy made by an older transform (only detected faces "
        "blurred) by a protected copy: the whole photo in coarse blocks, detected faces covered. "
        "Copies already made by the current transform are left alone, so it can run again at "
        "any time; originals that classrooms keep are not touched."
    )

    def handle(self, *args, **options):
        todo = list(
            Photo.objects.filter(image_state=ImageState.BLURRED, privacy_version__lt=VERSION)
            .exclude(image="")
            .exclude(image=None)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        self.stdout.write(f"{len(todo)} blurred cop{'y' if len(todo) == 1 else 'ies'} to protect.")
        done, failed = 0, []
        for i, pk in enumerate(todo, 1):
            photo = Photo.objects.filter(pk=pk).first()
            try:
                done += protect_stored_copy(photo) if photo else 0
            except (MLError, OSError) as exc:  # an unreadable copy: say which, go on
                failed.append(pk)
                self.stderr.write(f"photo {pk}: {exc}")
            self.stdout.write(f"[{i}/{len(todo)}] photo {pk}")
        copies = f"cop{'y' if done == 1 else 'ies'}"
        self.stdout.write(f"Protected {done} {copies}; {len(failed)} failed.")
        if failed:
            raise CommandError(f"Could not protect photos {', '.join(map(str, failed))}.")
