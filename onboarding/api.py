"""Onboarding API: the same operations as the pages. Clients reach only their own records;
staff act by named permission. Refusals come back in the portal's one error shape."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api_base import IsClient, StaffPermission, idempotent
from portal.permissions import Perm
from portal.products import Product

from . import selectors, services, training
from .models import (
    ClientProfile,
    EvidenceKind,
    PerpetualsAccessRequest,
    PIAttestation,
    PIBasis,
    PICategory,
    PIEvidence,
    SuitabilityAssessment,
)
from .policy import current_policy

# --- shared output shapes ------------------------------------------------------------


class ProfileOut(serializers.ModelSerializer):
    id_document_number_masked = serializers.CharField(source="masked_id_number")
    margin_account_confirmed = serializers.BooleanField()
    is_complete = serializers.BooleanField()
    missing_fields = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = ClientProfile
        fields = [
            "client_type", "legal_name", "other_names", "id_document_type", "id_document_number_masked", "date_of_birth",
            "nationality", "residential_address", "correspondence_address", "phone", "preferred_language",
            "employment_status", "employer", "occupation", "annual_income", "net_worth", "liquid_assets",
            "source_of_wealth", "margin_account_number", "margin_account_confirmed", "margin_account_confirmed_at",
            "is_complete", "missing_fields", "updated_at",
        ]


class StaffProfileOut(ProfileOut):
    """Staff who review onboarding see the full identity number."""

    class Meta(ProfileOut.Meta):
        fields = [*ProfileOut.Meta.fields, "id_document_number", "user"]


class EvidenceOut(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = PIEvidence
        fields = ["id", "kind", "issued_on", "content_type", "size", "sha256", "uploaded_at", "url"]

    def get_url(self, obj) -> str:
        return reverse("onboarding:evidence-file", args=[obj.pk])


class AttestationOut(serializers.ModelSerializer):
    evidence = EvidenceOut(many=True, read_only=True)
    client_email = serializers.CharField(source="client.email")

    class Meta:
        model = PIAttestation
        fields = [
            "id", "client_email", "state", "category", "basis", "declared_amount", "relevant_date",
            "includes_joint_with_associate", "includes_share_of_joint_with_others", "includes_wholly_owned_corporation",
            "understood_pi_treatment", "submitted_at", "decided_at", "verified_at", "expires_on", "decision_reason",
            "return_questions", "checklist", "assessment_record", "evidence",
        ]


class AssessmentOut(serializers.ModelSerializer):
    questionnaire_version = serializers.IntegerField(source="questionnaire.version")
    risk_profile_label = serializers.CharField(allow_null=True)

    class Meta:
        model = SuitabilityAssessment
        fields = [
            "id", "state", "questionnaire_version", "current_step", "answers", "risk_score", "risk_profile",
            "risk_profile_label", "risk_reasons", "va_knowledge", "va_knowledge_basis", "va_knowledge_detail",
            "derivative_knowledge", "derivative_knowledge_basis", "derivative_knowledge_detail", "warnings",
            "review_status", "flag_reasons", "started_at", "completed_at", "valid_until",
        ]


class PerpetualsOut(serializers.ModelSerializer):
    client_email = serializers.CharField(source="client.email")

    class Meta:
        model = PerpetualsAccessRequest
        fields = ["id", "client_email", "state", "requested_at", "decided_at", "decision_reason", "lapsed_at", "lapse_reason", "eligibility_record"]


class RequirementOut(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()
    met = serializers.BooleanField()
    reason = serializers.CharField()
    fix_url = serializers.CharField(help_text="The step that fixes it; empty when met or when waiting for staff.")
    waiting = serializers.BooleanField(help_text="True when the next step is our staff's, not the client's.")


class EligibilityOut(serializers.Serializer):
    product = serializers.CharField()
    eligible = serializers.BooleanField()
    requirements = RequirementOut(many=True)


def _own_attestation(request, pk: int) -> PIAttestation:
    return get_object_or_404(PIAttestation.objects.select_related("client").prefetch_related("evidence"), pk=pk, client=request.user)


def _own_assessment(request, pk: int) -> SuitabilityAssessment:
    return get_object_or_404(SuitabilityAssessment.objects.select_related("questionnaire"), pk=pk, client=request.user)


def _attestation_out(pk: int) -> dict:
    return AttestationOut(PIAttestation.objects.select_related("client").prefetch_related("evidence").get(pk=pk)).data


# --- client: profile ---------------------------------------------------------------------


class ProfileApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        client_type = serializers.CharField(required=False)
        legal_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
        other_names = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
        id_document_type = serializers.CharField(required=False, allow_blank=True)
        id_document_number = serializers.CharField(required=False, allow_blank=True, max_length=40)
        date_of_birth = serializers.DateField(required=False, allow_null=True)
        nationality = serializers.CharField(required=False, allow_blank=True, max_length=100)
        residential_address = serializers.CharField(required=False, allow_blank=True)
        correspondence_address = serializers.CharField(required=False, allow_blank=True)
        phone = serializers.CharField(required=False, allow_blank=True, max_length=40)
        preferred_language = serializers.CharField(required=False)
        employment_status = serializers.CharField(required=False, allow_blank=True)
        employer = serializers.CharField(required=False, allow_blank=True, max_length=200)
        occupation = serializers.CharField(required=False, allow_blank=True, max_length=200)
        annual_income = serializers.DecimalField(max_digits=18, decimal_places=2, required=False, allow_null=True, min_value=0)
        net_worth = serializers.DecimalField(max_digits=18, decimal_places=2, required=False, allow_null=True, min_value=0)
        liquid_assets = serializers.DecimalField(max_digits=18, decimal_places=2, required=False, allow_null=True, min_value=0)
        source_of_wealth = serializers.CharField(required=False, allow_blank=True)
        margin_account_number = serializers.CharField(required=False, allow_blank=True, max_length=40)

    @extend_schema(responses=ProfileOut, summary="Your client profile (identity number masked)")
    def get(self, request):
        profile = ClientProfile.objects.filter(user=request.user).first()
        if profile is None:
            raise Http404
        return Response(ProfileOut(profile).data)

    @extend_schema(request=InputSerializer, responses=ProfileOut, summary="Update your client profile")
    def patch(self, request):
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        profile = services.profile_update(user=request.user, data=data.validated_data)
        return Response(ProfileOut(profile).data)


# --- client: PI attestation ----------------------------------------------------------------


class AttestationInput(serializers.Serializer):
    category = serializers.ChoiceField(choices=PICategory.choices, required=False)
    basis = serializers.ChoiceField(choices=PIBasis.choices, required=False)
    declared_amount = serializers.DecimalField(max_digits=18, decimal_places=2, required=False, allow_null=True, min_value=0)
    relevant_date = serializers.DateField(required=False, allow_null=True)
    includes_joint_with_associate = serializers.BooleanField(required=False)
    includes_share_of_joint_with_others = serializers.BooleanField(required=False)
    includes_wholly_owned_corporation = serializers.BooleanField(required=False)
    understood_pi_treatment = serializers.BooleanField(required=False)


class AttestationListCreateApi(APIView):
    permission_classes = [IsClient]
    InputSerializer = AttestationInput

    @extend_schema(responses=AttestationOut(many=True), summary="Your professional-investor attestations, newest first")
    def get(self, request):
        rows = selectors.attestations_for(user=request.user).select_related("client").prefetch_related("evidence")
        return Response(AttestationOut(rows, many=True).data)

    @extend_schema(request=AttestationInput, responses={201: AttestationOut}, summary="Start an attestation (draft)")
    @idempotent("onboarding.attestation.create")
    def post(self, request):
        data = AttestationInput(data=request.data)
        data.is_valid(raise_exception=True)
        attestation = services.attestation_create(client=request.user, data=data.validated_data)
        return Response(_attestation_out(attestation.pk), status=status.HTTP_201_CREATED)


class AttestationDetailApi(APIView):
    permission_classes = [IsClient]
    InputSerializer = AttestationInput

    class ProblemsOut(serializers.Serializer):
        attestation = AttestationOut()
        problems = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=ProblemsOut, summary="One of your attestations, with what still stops it qualifying")
    def get(self, request, pk: int):
        attestation = _own_attestation(request, pk)
        problems = services.attestation_problems(attestation=attestation, policy=current_policy()) if attestation.editable else []
        return Response({"attestation": AttestationOut(attestation).data, "problems": problems})

    @extend_schema(request=AttestationInput, responses=AttestationOut, summary="Change a draft or returned attestation")
    def patch(self, request, pk: int):
        _own_attestation(request, pk)
        data = AttestationInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.attestation_update(attestation_id=pk, actor=request.user, data=data.validated_data)
        return Response(_attestation_out(pk))


class EvidenceUploadApi(APIView):
    permission_classes = [IsClient]
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=EvidenceKind.choices)
        issued_on = serializers.DateField()
        file = serializers.FileField()

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: EvidenceOut}, summary="Upload evidence (PDF, PNG or JPEG, at most 10 MB)")
    def post(self, request, pk: int):
        _own_attestation(request, pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evidence = services.evidence_add(attestation_id=pk, actor=request.user, upload=data.validated_data["file"],
                                         kind=data.validated_data["kind"], issued_on=data.validated_data["issued_on"])
        return Response(EvidenceOut(evidence).data, status=status.HTTP_201_CREATED)


class AttestationSubmitApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(request=None, responses=AttestationOut, summary="Submit an attestation for verification")
    @idempotent("onboarding.attestation.submit")
    def post(self, request, pk: int):
        _own_attestation(request, pk)
        services.attestation_submit(attestation_id=pk, actor=request.user)
        return Response(_attestation_out(pk))


class AttestationWithdrawApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(request=None, responses=AttestationOut, summary="Withdraw your professional-investor status")
    @idempotent("onboarding.attestation.withdraw")
    def post(self, request, pk: int):
        _own_attestation(request, pk)
        services.attestation_withdraw(attestation_id=pk, actor=request.user)
        return Response(_attestation_out(pk))


# --- client: suitability -----------------------------------------------------------------------


class QuestionnaireApi(APIView):
    permission_classes = [IsClient]

    class OutputSerializer(serializers.Serializer):
        version = serializers.IntegerField()
        title = serializers.CharField()
        definition = serializers.JSONField()

    @extend_schema(responses=OutputSerializer, summary="The current suitability questionnaire (both languages)")
    def get(self, request):
        q = services.current_questionnaire()
        return Response({"version": q.version, "title": q.title, "definition": q.definition})


class AssessmentListCreateApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(responses=AssessmentOut(many=True), summary="Your suitability assessments, newest first")
    def get(self, request):
        return Response(AssessmentOut(selectors.assessments_for(user=request.user), many=True).data)

    @extend_schema(request=None, responses={201: AssessmentOut}, summary="Start (or resume) an assessment")
    def post(self, request):
        assessment = services.assessment_start(client=request.user)
        return Response(AssessmentOut(assessment).data, status=status.HTTP_201_CREATED)


class AssessmentDetailApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(responses=AssessmentOut, summary="One of your assessments")
    def get(self, request, pk: int):
        return Response(AssessmentOut(_own_assessment(request, pk)).data)


class AssessmentStepApi(APIView):
    permission_classes = [IsClient]

    class InputSerializer(serializers.Serializer):
        step = serializers.IntegerField(min_value=0, help_text="Zero-based step index")
        answers = serializers.DictField(help_text="Question code → answer")

    @extend_schema(request=InputSerializer, responses=AssessmentOut, summary="Save one step's answers (progress is kept)")
    def post(self, request, pk: int):
        _own_assessment(request, pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assessment = services.assessment_save_step(assessment_id=pk, actor=request.user, step=data.validated_data["step"], data=data.validated_data["answers"])
        return Response(AssessmentOut(assessment).data)


class AssessmentCompleteApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(request=None, responses=AssessmentOut, summary="Finish the assessment and get the scored result")
    @idempotent("onboarding.assessment.complete")
    def post(self, request, pk: int):
        _own_assessment(request, pk)
        assessment = services.assessment_complete(assessment_id=pk, actor=request.user)
        return Response(AssessmentOut(SuitabilityAssessment.objects.select_related("questionnaire").get(pk=assessment.pk)).data)


class TrainingApi(APIView):
    permission_classes = [IsClient]

    class OutputSerializer(serializers.Serializer):
        code = serializers.CharField()
        version = serializers.IntegerField()
        title = serializers.CharField()
        sections = serializers.ListField(child=serializers.DictField())
        quiz = serializers.ListField(child=serializers.DictField())
        pass_mark_pct = serializers.IntegerField()

    class InputSerializer(serializers.Serializer):
        answers = serializers.DictField(child=serializers.IntegerField(min_value=0), help_text="Quiz question code → chosen option index")

    class AttemptOut(serializers.Serializer):
        score_pct = serializers.IntegerField()
        pass_mark_pct = serializers.IntegerField()
        passed = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer, summary="A training module's text and quiz")
    def get(self, request, module: str):
        m = training.MODULES.get(module)
        if m is None:
            raise Http404
        return Response({
            "code": m.code, "version": m.version, "title": str(m.title), "pass_mark_pct": current_policy().training_pass_mark_pct,
            "sections": [{"heading": str(h), "text": str(t)} for h, t in m.sections],
            "quiz": [{"code": q.code, "text": str(q.text), "options": [str(o) for o in q.options]} for q in m.quiz],
        })

    @extend_schema(request=InputSerializer, responses={201: AttemptOut}, summary="Answer the quiz")
    def post(self, request, module: str):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attempt = services.training_submit(client=request.user, module=module, answers=data.validated_data["answers"])
        return Response({"score_pct": attempt.score_pct, "pass_mark_pct": attempt.pass_mark_pct, "passed": attempt.passed}, status=status.HTTP_201_CREATED)


class EligibilityApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(responses=EligibilityOut(many=True), summary="Your eligibility for each product, requirement by requirement")
    def get(self, request):
        facts = selectors.client_facts(user=request.user)
        rows = [selectors.product_eligibility(user=request.user, product=p, facts=facts) for p in (Product.VA_MARGIN, Product.PERPETUALS)]
        return Response([{"product": e.product, "eligible": e.eligible, "requirements": [r.__dict__ for r in e.requirements]} for e in rows])


class PerpetualsRequestApi(APIView):
    permission_classes = [IsClient]

    @extend_schema(responses=PerpetualsOut(many=True), summary="Your perpetual-contracts access requests")
    def get(self, request):
        return Response(PerpetualsOut(PerpetualsAccessRequest.objects.filter(client=request.user).select_related("client"), many=True).data)

    @extend_schema(request=None, responses={201: PerpetualsOut}, summary="Request perpetual-contracts access (when eligible)")
    @idempotent("onboarding.perpetuals.request")
    def post(self, request):
        access = services.perpetuals_request(client=request.user)
        return Response(PerpetualsOut(access).data, status=status.HTTP_201_CREATED)


class PolicyApi(APIView):
    class OutputSerializer(serializers.Serializer):
        policy_version = serializers.IntegerField()
        pi_portfolio_threshold = serializers.CharField()
        pi_total_assets_threshold = serializers.CharField()
        evidence_window_months = serializers.IntegerField()
        audited_accounts_window_months = serializers.IntegerField()
        pi_validity_months = serializers.IntegerField()
        suitability_validity_months = serializers.IntegerField()
        derivative_min_transactions = serializers.IntegerField()
        va_margin_min_risk_profile = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer, summary="The onboarding numbers in force")
    def get(self, request):
        return Response(current_policy().as_record())


# --- staff -----------------------------------------------------------------------------------------


class StaffQueueApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.WORKBENCH_ACCESS

    class OutputSerializer(serializers.Serializer):
        kind = serializers.CharField()
        pk = serializers.IntegerField()
        client_email = serializers.CharField()
        waiting_since = serializers.DateTimeField()
        summary = serializers.CharField()
        url = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True), summary="Onboarding work waiting for staff, oldest first")
    def get(self, request):
        items = selectors.onboarding_queue(user=request.user)
        return Response(self.OutputSerializer(items, many=True).data)


class StaffAttestationApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.ONBOARDING_REVIEW

    @extend_schema(responses=AttestationOut, summary="An attestation with its evidence")
    def get(self, request, pk: int):
        get_object_or_404(PIAttestation, pk=pk)
        return Response(_attestation_out(pk))


class StaffAttestationDecisionApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.ONBOARDING_REVIEW

    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["verify", "reject", "return"])
        checklist = serializers.DictField(child=serializers.BooleanField(), required=False, default=dict,
                                          help_text="identity_matches, issuer_acceptable, dates_in_window, amount_supported, counting_correct")
        reason = serializers.CharField(required=False, allow_blank=True, default="")
        questions = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses=AttestationOut, summary="Verify, reject or return an attestation")
    @idempotent("onboarding.attestation.decide")
    def post(self, request, pk: int):
        get_object_or_404(PIAttestation, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        if d["decision"] == "verify":
            services.attestation_verify(attestation_id=pk, actor=request.user, checklist=d["checklist"], reason=d["reason"])
        elif d["decision"] == "reject":
            services.attestation_reject(attestation_id=pk, actor=request.user, checklist=d["checklist"], reason=d["reason"])
        else:
            services.attestation_return(attestation_id=pk, actor=request.user, checklist=d["checklist"], questions=d["questions"])
        return Response(_attestation_out(pk))


class StaffProfileApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.ONBOARDING_REVIEW

    @extend_schema(responses=StaffProfileOut, parameters=[OpenApiParameter("user_id", int, OpenApiParameter.PATH)], summary="A client's profile (full identity number)")
    def get(self, request, user_id: int):
        return Response(StaffProfileOut(get_object_or_404(ClientProfile, user_id=user_id)).data)


class StaffConfirmMarginAccountApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.ONBOARDING_REVIEW

    @extend_schema(request=None, responses=StaffProfileOut, summary="Confirm a client's securities margin account")
    @idempotent("onboarding.profile.confirm_margin")
    def post(self, request, user_id: int):
        profile = get_object_or_404(ClientProfile, user_id=user_id)
        profile = services.profile_confirm_margin_account(profile_id=profile.pk, actor=request.user)
        return Response(StaffProfileOut(profile).data)


class StaffAssessmentReviewApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.SUITABILITY_REVIEW

    class InputSerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=[services.ReviewOutcome.CONFIRM, services.ReviewOutcome.REASSESS])
        note = serializers.CharField()

    @extend_schema(responses=AssessmentOut, summary="A client's assessment")
    def get(self, request, pk: int):
        return Response(AssessmentOut(get_object_or_404(SuitabilityAssessment.objects.select_related("questionnaire"), pk=pk)).data)

    @extend_schema(request=InputSerializer, responses=AssessmentOut, summary="Review a flagged assessment")
    def post(self, request, pk: int):
        get_object_or_404(SuitabilityAssessment, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assessment = services.assessment_review(assessment_id=pk, actor=request.user, **data.validated_data)
        return Response(AssessmentOut(SuitabilityAssessment.objects.select_related("questionnaire").get(pk=assessment.pk)).data)


class StaffPerpetualsDecisionApi(APIView):
    permission_classes = [StaffPermission]
    required_perm = Perm.PERPETUALS_GRANT

    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["grant", "refuse"])
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses=PerpetualsOut, summary="Grant or refuse perpetual-contracts access")
    @idempotent("onboarding.perpetuals.decide")
    def post(self, request, pk: int):
        get_object_or_404(PerpetualsAccessRequest, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["decision"] == "grant":
            access = services.perpetuals_grant(request_id=pk, actor=request.user, reason=data.validated_data["reason"])
        else:
            access = services.perpetuals_refuse(request_id=pk, actor=request.user, reason=data.validated_data["reason"])
        return Response(PerpetualsOut(PerpetualsAccessRequest.objects.select_related("client").get(pk=access.pk)).data)

