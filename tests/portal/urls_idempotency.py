"""A test-only API view that creates one record per request, to exercise ``@idempotent``."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api_base import IsClient, idempotent
from portal.notifications import notify


class CreateNoteApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=50)

    @idempotent("test.note")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note = notify(user=request.user, kind="test", title=data.validated_data["title"], email=False)
        return Response({"id": note.id, "title": note.title}, status=201)


urlpatterns = [
    path("api/test/notes/", CreateNoteApi.as_view()),
    path("", include("portal.urls")),
]
