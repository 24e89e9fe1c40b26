"""Postmark's bounce, spam-complaint, delivery, subscription-change, open and click
webhooks (postmarkapp.com/developer/webhooks): metadata comes back in `Metadata`; and
its inbound webhook (an email to one of our addresses)."""

import itertools
import uuid
from datetime import datetime

from tests.esp_payloads import ESP, iso_z


class Postmark(ESP):
    name = "Postmark"
    tracking_url = "/anymail/postmark/tracking/"
    _bounce_ids = itertools.count(4323372036854775807)

    def _bounce(
        self, record_type: str, bounce_type: str, type_code: int, name: str, description: str
    ):
        def build(recipient: str, metadata: dict, at: datetime, details: str = "") -> dict:
            return {
                "RecordType": record_type,
                "MessageStream": "outbound",
                "ID": next(self._bounce_ids),
                "Type": bounce_type,
                "TypeCode": type_code,
                "Name": name,
                "Tag": metadata.get("message_type", ""),
                "MessageID": str(uuid.uuid4()),
                "Metadata": metadata,
                "ServerID": 23,
                "Description": description,
                "Details": details or "smtp;550 5.1.1 The email account does not exist.",
                "Email": recipient,
                "From": "hello@example.org",
                "BouncedAt": iso_z(at, digits=7),
                "DumpAvailable": True,
                # Postmark deactivates an address after a hard bounce or a complaint.
                "Inactive": bounce_type in {"HardBounce", "SpamComplaint"},
                "CanActivate": True,
                "Subject": "Welcome to Explaining Ukraine",
                "Content": "Return-Path: <>\r\nReceived: ...",
            }

        return build

    def hard_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "Bounce",
            "HardBounce",
            1,
            "Hard bounce",
            "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        )(recipient, metadata, at)

    def soft_bounce(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "Bounce",
            "SoftBounce",
            4096,
            "Soft bounce/Undeliverable",
            "Unable to temporarily deliver this email.",
        )(recipient, metadata, at, details="smtp;452 4.2.2 The email account is over quota.")

    def virus_notification(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # The receiving server warns of a virus in the message; the address is fine.
        return self._bounce(
            "Bounce",
            "VirusNotification",
            8192,
            "Virus notification",
            "The bounce is actually a virus notification warning about a virus/code infected "
            "message.",
        )(recipient, metadata, at, details="smtp;554 5.7.0 Message contains a virus")

    def bad_email_address(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "Bounce",
            "BadEmailAddress",
            100000,
            "Invalid email address",
            "The address is not a valid email address.",
        )(recipient, metadata, at, details="Invalid email address")

    def manually_deactivated(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "Bounce",
            "ManuallyDeactivated",
            100002,
            "Manually deactivated",
            "The email was manually deactivated.",
        )(recipient, metadata, at, details="Manually deactivated")

    def complaint(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self._bounce(
            "SpamComplaint",
            "SpamComplaint",
            512,
            "Spam complaint",
            "The subscriber explicitly marked this message as spam.",
        )(recipient, metadata, at, details="Test spam complaint details")

    def delivered(self, recipient: str, metadata: dict, at: datetime) -> dict:
        # A Delivery record carries no ID of its own.
        return {
            "RecordType": "Delivery",
            "ServerID": 23,
            "MessageStream": "outbound",
            "MessageID": str(uuid.uuid4()),
            "Recipient": recipient,
            "Tag": metadata.get("message_type", ""),
            "DeliveredAt": iso_z(at, digits=7),
            "Details": "smtp;250 2.0.0 OK  1612460832 d12si1236524qkf.193 - gsmtp",
            "Metadata": metadata,
        }

    def unsubscribed(
        self, recipient: str, metadata: dict, at: datetime, *, suppress_sending: bool = True
    ) -> dict:
        # The reader used Postmark's unsubscribe link; no ID here either.
        return {
            "RecordType": "SubscriptionChange",
            "MessageID": str(uuid.uuid4()),
            "ServerID": 23,
            "MessageStream": "broadcast",
            "ChangedAt": iso_z(at, digits=7),
            "Recipient": recipient,
            "Origin": "Recipient",
            "SuppressSending": suppress_sending,
            "SuppressionReason": "ManualSuppression" if suppress_sending else None,
            "Tag": metadata.get("message_type", ""),
            "Metadata": metadata,
        }

    def resubscribed(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return self.unsubscribed(recipient, metadata, at, suppress_sending=False)

    def opened(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return {
            "RecordType": "Open",
            "MessageStream": "outbound",
            "FirstOpen": True,
            "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
            "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X"},
            "Platform": "WebMail",
            "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) Chrome/35.0",
            "ReadSeconds": 5,
            "Geo": {"CountryISOCode": "UA", "Country": "Ukraine", "City": "Kyiv"},
            "MessageID": str(uuid.uuid4()),
            "Metadata": metadata,
            "ReceivedAt": iso_z(at, digits=7),
            "Tag": metadata.get("message_type", ""),
            "Recipient": recipient,
        }

    def clicked(self, recipient: str, metadata: dict, at: datetime) -> dict:
        return {
            "RecordType": "Click",
            "MessageStream": "outbound",
            "ClickLocation": "HTML",
            "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
            "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X"},
            "Platform": "Desktop",
            "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) Chrome/35.0",
            "OriginalLink": "https://news.example.org/newsletters/explaining-ukraine/",
            "Geo": {"CountryISOCode": "UA", "Country": "Ukraine", "City": "Kyiv"},
            "MessageID": str(uuid.uuid4()),
            "Metadata": metadata,
            "ReceivedAt": iso_z(at, digits=7),
            "Tag": metadata.get("message_type", ""),
            "Recipient": recipient,
        }


def postmark_inbound(*, to: str, subject: str, sender: str = "ann@example.org") -> dict:
    """An inbound message as Postmark posts it (here, Gmail's automatic unsubscribe)."""
    return {
        "FromName": "Ann Reader",
        "MessageStream": "inbound",
        "From": sender,
        "FromFull": {"Email": sender, "Name": "Ann Reader", "MailboxHash": ""},
        "To": to,
        "ToFull": [{"Email": to, "Name": "", "MailboxHash": ""}],
        "Cc": "",
        "CcFull": [],
        "Bcc": "",
        "BccFull": [],
        "OriginalRecipient": to,
        "Subject": subject,
        "MessageID": str(uuid.uuid4()),
        "ReplyTo": "",
        "MailboxHash": "",
        "Date": "Wed, 25 Nov 2026 11:40:00 +0200",
        "TextBody": "This message was automatically generated by Gmail.\n",
        "HtmlBody": "",
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": [
            {"Name": "Return-Path", "Value": f"<{sender}>"},
            {
                "Name": "Received",
                "Value": "by mail-wr1-f54.google.com with SMTP id a1so123; "
                "Wed, 25 Nov 2026 01:40:00 -0800 (PST)",
            },
            {"Name": "X-Spam-Checker-Version", "Value": "SpamAssassin 3.4.0 on p-pm-inbound02"},
            {"Name": "X-Spam-Status", "Value": "No"},
            {"Name": "X-Spam-Score", "Value": "-0.1"},
            {"Name": "X-Spam-Tests", "Value": "DKIM_SIGNED,DKIM_VALID,SPF_PASS"},
            {"Name": "Received-SPF", "Value": "pass (google.com: domain of sender)"},
            {"Name": "MIME-Version", "Value": "1.0"},
            {"Name": "Message-ID", "Value": f"<{uuid.uuid4().hex}@mail.gmail.com>"},
        ],
        "Attachments": [],
    }
