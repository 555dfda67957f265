"""First-start set-up: an admin account (password printed once) and the default model."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from classifier.services import register_default_model


class Command(BaseCommand):
    help = "Create the first admin account if none exists; register the shipped model."

    def handle(self, *args, **options):
        User = get_user_model()
        if not User.objects.filter(is_superuser=True).exists():
            password = settings.EDUMOOD_ADMIN_PASSWORD or secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "", password)
            shown = "(from EDUMOOD_ADMIN_PASSWORD)" if settings.EDUMOOD_ADMIN_PASSWORD else password
            self.stdout.write(
                self.style.SUCCESS(
                    "Created the admin account. Log in as 'admin' with password: "
                    f"{shown}\nThis password is shown only once; change it after logging in."
                )
            )
        message = register_default_model()
        if message:
            self.stdout.write(message)
