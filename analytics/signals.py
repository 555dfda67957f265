"""Stored files follow their rows: deleting a classroom, session or photo deletes its images."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Photo
from .services import delete_photo_file


@receiver(post_delete, sender=Photo)
def delete_image_with_photo(sender, instance: Photo, **kwargs):
    # Cascades from a classroom or session send this per photo. The file goes only after the
    # commit, so a rolled-back delete never leaves a row without its image.
    name = instance.image.name if instance.image else ""
    if name:
        transaction.on_commit(lambda: delete_photo_file(name))
