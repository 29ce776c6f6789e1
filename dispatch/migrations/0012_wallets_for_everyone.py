"""Every customer and provider gets the wallet sign-up now opens for them (before, it was made on first use)."""
from django.db import migrations

KIND_OF_ROLE = {"customer": "customer", "provider": "provider"}


def open_wallets(apps, schema_editor):
    User, Wallet = apps.get_model("dispatch", "User"), apps.get_model("dispatch", "Wallet")
    users = User.objects.filter(role__in=list(KIND_OF_ROLE), wallet__isnull=True).values_list("pk", "role")
    batch = []
    for user_id, role in users.iterator(chunk_size=5000):
        batch.append(Wallet(user_id=user_id, kind=KIND_OF_ROLE[role]))
        if len(batch) == 5000:
            Wallet.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    Wallet.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("dispatch", "0011_job_region")]

    operations = [migrations.RunPython(open_wallets, migrations.RunPython.noop)]
