from django.urls import path

from subscriptions.web import api, archive, embeds, preferences_page, stripe_webhook, views

app_name = "subscriptions"

urlpatterns = [
    path("", views.home, name="home"),
    path("language/<str:code>/", views.choose_language, name="choose_language"),
    path("newsletters/", views.newsletter_list, name="newsletter_list"),
    path("newsletters/<slug:slug>/", views.newsletter_detail, name="newsletter_detail"),
    path("newsletters/<slug:slug>/archive/", archive.issue_archive, name="issue_archive"),
    path("newsletters/<slug:slug>/archive/<int:issue_id>/", archive.issue_page, name="issue"),
    path("newsletters/<slug:slug>/feed/", archive.issue_feed, name="issue_feed"),
    path("subscribe/", views.signup, name="signup"),
    path("subscribe/thanks/", views.thanks, name="thanks"),
    path("subscribe/embed/", embeds.embed_signup, name="embed_signup"),
    path("embed/signup/", embeds.embed_signup_form, name="embed_signup_form"),
    path("embed/goal/", embeds.embed_goal, name="embed_goal"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("confirm/<str:token>/resend/", views.confirm_resend, name="confirm_resend"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>/", preferences_page.preferences_page, name="preferences"),
    path(
        "preferences/<str:token>/privacy/",
        preferences_page.privacy_request,
        name="privacy_request",
    ),
    path("privacy/<str:token>/", views.privacy_confirm, name="privacy"),
    path("api/v1/subscriptions", api.create_subscription, name="api_create_subscription"),
    path("api/v1/form-token", api.form_token, name="api_form_token"),
    path("api/v1/goal", api.goal, name="api_goal"),
    path("api/schema/", api.schema, name="api_schema"),
    path("webhooks/stripe/", stripe_webhook.stripe_webhook, name="stripe_webhook"),
]
