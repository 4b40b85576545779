"""One CometChat UID belongs to at most one Django user: the UIDBinding table.

Existing data is bound as it stands: each UID goes to the Django user that owns its oldest stored
conversation (or, failing that, its oldest sync run). A UID whose rows name several users (the
collision this table prevents from now on) is bound to the first; the others are refused from the
next request on, and ``cometchat_rebind`` can move it on purpose.
"""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def bind_existing_owners(apps: Any, schema_editor: Any) -> None:
    binding = apps.get_model("django_cometchat", "UIDBinding")
    bound: dict[str, int] = {}
    for model_name in ("Conversation", "SyncRun"):
        model = apps.get_model("django_cometchat", model_name)
        pairs = (
            model.objects.filter(owner__isnull=False)
            .order_by("id")
            .values_list("owner_uid", "owner_id")
            .iterator()
        )
        for uid, user_id in pairs:
            bound.setdefault(uid, user_id)
    binding.objects.bulk_create(
        [binding(uid=uid, user_id=user_id) for uid, user_id in bound.items()],
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("django_cometchat", "0002_admin_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="UIDBinding",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "uid",
                    models.CharField(max_length=100, unique=True, verbose_name="CometChat UID"),
                ),
                ("bound_at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="cometchat_uid_bindings",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "UID binding", "ordering": ("uid",)},
        ),
        migrations.RunPython(bind_existing_owners, migrations.RunPython.noop, elidable=True),
    ]
