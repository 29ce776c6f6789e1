"""The event outbox flag. Rows written before it existed count as pushed: never resend history."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dispatch", "0005_wallet_ledger_invoice")]

    operations = [
        migrations.AddField(model_name="event", name="pushed", field=models.BooleanField(default=True)),
        migrations.AlterField(model_name="event", name="pushed", field=models.BooleanField(default=False)),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(condition=models.Q(pushed=False), fields=["id"], name="event_unpushed"),
        ),
    ]
