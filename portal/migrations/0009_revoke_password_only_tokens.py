"""API tokens of clients with an authenticator app were issued on the password alone until the token endpoint
asked for the code too (portal.api.TokenObtainApi): they stop working, and a new one takes the code."""

from django.db import migrations


def revoke(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    Authenticator = apps.get_model("mfa", "Authenticator")
    enrolled = Authenticator.objects.filter(type="totp").values("user_id")
    Token.objects.filter(user_id__in=enrolled).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0008_audit_write_indexes"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("mfa", "0003_authenticator_type_uniq"),
    ]

    operations = [migrations.RunPython(revoke, migrations.RunPython.noop)]
