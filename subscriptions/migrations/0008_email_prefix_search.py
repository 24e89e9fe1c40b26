from django.db import migrations


def create_email_prefix_index(apps, schema_editor):
    """PostgreSQL only: an index that serves the admin's address search, which matches
    the start of the lower-cased address (LIKE 'ann@exa%'). The unique index on
    LOWER(email) cannot serve LIKE unless the database's collation is "C";
    text_pattern_ops can, whatever the collation. SQLite needs nothing: its lists are
    small and its LIKE scans fast."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS subscriber_email_prefix ON subscriptions_subscriber "
            "(LOWER(email) text_pattern_ops)"
        )


def drop_email_prefix_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS subscriber_email_prefix")


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0007_import_progress")]

    operations = [migrations.RunPython(create_email_prefix_index, drop_email_prefix_index)]
