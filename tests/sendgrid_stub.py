"""A stand-in for SendGrid's v3 send API (`POST /v3/mail/send`, JSON), for anymail's
SendGrid backend pointed at it with `SENDGRID_API_URL`; the HTTP side is the Mailgun
stand-in's.

It answers as SendGrid does (202, an empty body, `X-Message-Id`), and reads a call the
way SendGrid would send it: one message per `personalizations` entry (at most 1,000,
and as many recipients), whose `substitutions` replace their keys in the subject and
content, whose `headers` and `custom_args` join the call's own. Every `%recipient.KEY%`
the message uses must have a value in every personalization (SendGrid would send the
key itself otherwise), and each personalization's substitutions must stay under
SendGrid's 10,000 bytes (https://www.twilio.com/docs/sendgrid/api-reference/mail-send).

Calls are recorded in the Mailgun stand-in's shape, so one test reads either: a
recipient's variables hold their substitutions by name, their headers as `h:NAME` and
their custom arguments as `v:NAME`; the call's fields likewise.
"""

import json
import re
import uuid

from tests.mailgun_stub import Call, MailgunStub

_VARIABLE = re.compile(r"%recipient\.([^%]+)%")
_LIMIT = 1000
_SUBSTITUTION_BYTES = 10_000


class SendGridStub(MailgunStub):
    @property
    def api_url(self) -> str:
        assert self._server is not None, "the stub is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v3/"

    def parse(self, path: str, content_type: str, body: bytes) -> Call:
        data = json.loads(body)
        fields = {"path": path, "subject": data.get("subject", "")}
        for part in data.get("content", []):
            fields["html" if part["type"] == "text/html" else "text"] = part["value"]
        fields.update({f"h:{k}": v for k, v in data.get("headers", {}).items()})
        fields.update({f"v:{k}": v for k, v in data.get("custom_args", {}).items()})
        to, variables = [], {}
        for personalization in data.get("personalizations", []):
            addresses = [r["email"] for r in personalization.get("to", [])]
            to.extend(addresses)
            # A key SendGrid replaces is any text; named here only as a placeholder.
            own = {
                match.group(1) if (match := _VARIABLE.fullmatch(key)) else f"bare:{key}": value
                for key, value in personalization.get("substitutions", {}).items()
            }
            own.update({f"h:{k}": v for k, v in personalization.get("headers", {}).items()})
            own.update({f"v:{k}": v for k, v in personalization.get("custom_args", {}).items()})
            own["_personalization_size"] = str(len(addresses))
            own["_substitution_bytes"] = str(
                len(json.dumps(personalization.get("substitutions", {})).encode())
            )
            for address in addresses:
                variables[address] = own
        return Call(domain="", to=to, fields=fields, variables=variables)

    def check(self, call: Call) -> list[str]:
        problems = []
        if not call.fields["path"].endswith("/v3/mail/send"):
            problems.append(f"the call was to {call.fields['path']}, not /v3/mail/send")
        if len(call.to) > _LIMIT:
            problems.append(f"{len(call.to)} recipients in one call (SendGrid takes {_LIMIT})")
        used = set()
        for name in ("subject", "html", "text"):
            used.update(_VARIABLE.findall(call.fields.get(name, "")))
        for address in call.to:
            own = call.variables[address]
            if own["_personalization_size"] != "1":
                problems.append(f"{address}: shares a personalization, so its links too")
            if int(own["_substitution_bytes"]) > _SUBSTITUTION_BYTES:
                problems.append(f"{address}: substitutions over {_SUBSTITUTION_BYTES} bytes")
            bare = [key[5:] for key in own if key.startswith("bare:")]
            if bare:
                problems.append(f"{address}: would replace every {bare} in the text")
            missing = used - set(own)
            if missing:
                problems.append(f"{address}: no value for {sorted(missing)}")
        return problems

    def answer(self, status: int) -> tuple[int, dict[str, str], bytes]:
        if status == 200:
            return 202, {"X-Message-Id": uuid.uuid4().hex}, b""
        refusal = {"errors": [{"message": "stand-in's scripted refusal"}]}
        return status, {"Content-Type": "application/json"}, json.dumps(refusal).encode()
