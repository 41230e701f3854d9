from django.urls import path

from . import views

app_name = "servicing"

urlpatterns = [
    path("statements/", views.statements, name="statements"),
    path("statements/preferences/", views.statement_preferences, name="statement-preferences"),
    path("statements/<id:pk>/", views.statement_html, name="statement"),
    path("statements/<id:pk>/pdf/", views.statement_pdf, name="statement-pdf"),
    path("facilities/<id:pk>/letter/", views.letter, name="letter"),
    path("facilities/<id:pk>/letter.pdf", views.letter_pdf, name="letter-pdf"),
    path("receipts/<id:pk>/pdf/", views.receipt_pdf, name="receipt-pdf"),
    path("facilities/<id:pk>/requests/", views.facility_requests, name="facility-requests"),
    path("addresses/", views.addresses, name="addresses"),
    path("addresses/confirm/<str:token>/", views.address_confirm, name="address-confirm"),
    path("staff/requests/", views.staff_requests, name="staff-requests"),
    path("staff/reviews/", views.staff_reviews, name="staff-reviews"),
    path("staff/rates/", views.staff_rates, name="staff-rates"),
    path("staff/statements/", views.staff_statements, name="staff-statements"),
    path("staff/statements/<id:pk>/", views.staff_statement_html, name="staff-statement"),
    path("staff/statements/<id:pk>/pdf/", views.staff_statement_pdf, name="staff-statement-pdf"),
    path("staff/facilities/<id:pk>/letter/", views.staff_letter, name="staff-letter"),
    path("staff/facilities/<id:pk>/letter.pdf", views.staff_letter_pdf, name="staff-letter-pdf"),
]
