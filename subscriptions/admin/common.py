from django.http import HttpRequest


def actor(request: HttpRequest) -> str:
    """How the event log names an editor."""
    return f"admin:{request.user.get_username()}"
