"""`manage.py issue_token USER`: a new API token for a user, printed once (for integrations)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import issue_token


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="issued by manage.py", help="label of the token")
        parser.add_argument(
            "--create",
            action="store_true",
            help="create the user if missing (no password: it can only use tokens)",
        )
        parser.add_argument("--staff", action="store_true", help="with --create: an admin")

    def handle(self, *args, username, name, create, staff, **options):
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            if not create:
                raise CommandError(f"No user {username!r} (add --create to create one).")
            user = users.create_user(username=username, is_staff=staff)
        _, key = issue_token(user, name)
        self.stdout.write(key)
