from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('collateral', '0007_break_message_codes'),
    ]

    operations = [
        migrations.AddField(
            model_name='custodybalance',
            name='reported_as_of',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
