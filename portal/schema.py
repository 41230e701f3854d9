from drf_spectacular.openapi import AutoSchema


class PortalAutoSchema(AutoSchema):
    """Names nested serializers after their view (``MeApi.OutputSerializer`` → ``MeApiOutput``).

    Every API view declares its own ``InputSerializer``/``OutputSerializer``;
    without the prefix their schema components would collide.
    """

    def get_serializer_name(self, serializer, direction):
        qualname = type(serializer).__qualname__
        if "." in qualname:
            return qualname.replace(".", "")
        return super().get_serializer_name(serializer, direction)
