"""settings.CONTENT_SECURITY_POLICY (django-csp): no inline scripts or styles on our
pages, nothing may frame the site, and only the sign-up challenge's provider, when one
is configured, may serve scripts, frames and styles besides the site itself."""

from urllib.parse import urlsplit

_CHALLENGE_ORIGINS = {
    "turnstile": ["https://challenges.cloudflare.com"],
    "hcaptcha": ["https://hcaptcha.com", "https://*.hcaptcha.com"],
}


def content_security_policy(challenge: str, challenge_script_url: str = "") -> dict:
    directives: dict[str, list[str]] = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
    origins = _CHALLENGE_ORIGINS.get(challenge.strip().lower(), [])
    if challenge_script_url:
        # A stand-in for the provider (the tests' own).
        origins = ["{0.scheme}://{0.netloc}".format(urlsplit(challenge_script_url))]
    for directive in ("script-src", "frame-src", "connect-src", "style-src"):
        directives.setdefault(directive, ["'self'"]).extend(origins)
    return {"DIRECTIVES": directives}
