from django.urls import path

from bench import baselines
from newsroom.urls import urlpatterns as app_urlpatterns

urlpatterns = [
    path("bench/no-database", baselines.no_database),
    path("bench/one-insert", baselines.one_insert),
    path("bench/signup-statement", baselines.signup_statement),
    *app_urlpatterns,
]
