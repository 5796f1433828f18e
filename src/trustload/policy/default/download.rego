# trustload default policy: the user's R4 decision, in current Rego syntax.
#
# The gate evaluates data.registry.download over the input document described in
# docs/policy.md (every field is always present; unknown values are null). It
# permits only when `permit` is true AND the `deny` set is empty. Every deny
# message starts with the INTERFACE reason code it stands for ("CODE: why"), so
# the decision can say which rule denied.
#
# The built-in checks of the gate enforce the same clauses independently: a policy
# can add denials, never turn a failed built-in check into a permit.
package registry.download

import rego.v1

default permit := false

# R4, as written by the user: a Registry record is present (the start-up gate).
permit if {
	input.mode == "gate"
	input.resource.stage in input.allowed_stages
	input.resource.revoked == false
	input.resource.quarantined == false
	input.signature.valid == true
	input.attestation.present == true
	input.attestation.subject == input.artifact.sha256
	input.runtime.policy_digest == input.resource.policy_digest
	input.requester.tenant == input.resource.tenant
	some purpose in input.requester.purpose
	purpose in input.resource.purpose.allowed
	time.parse_rfc3339_ns(input.now) <= time.parse_rfc3339_ns(input.resource.lifecycle.revalidate_by)
	count(deny) == 0
}

# verify-files: no Registry record, so only the evidence clauses apply.
permit if {
	input.mode == "files"
	input.signature.valid == true
	count(deny) == 0
}

# ---- helpers (null-safe: two nulls are never "equal" here) ----

gate if input.mode == "gate"

known(value) if {
	is_string(value)
	value != ""
}

same(a, b) if {
	known(a)
	a == b
}

revalidation_ok if {
	time.parse_rfc3339_ns(input.now) <= time.parse_rfc3339_ns(input.resource.lifecycle.revalidate_by)
}

purpose_ok if {
	some purpose in input.requester.purpose
	purpose in input.resource.purpose.allowed
}

attestation_checked if gate

attestation_checked if input.attestation.required == true

attestation_checked if input.attestation.present == true

# ---- deny: one message per failed clause, each naming its reason code ----

deny contains "POLICY_DENY: unknown input mode" if not input.mode in {"gate", "files"}

deny contains msg if {
	gate
	not input.resource.stage in input.allowed_stages
	msg := sprintf("STAGE_NOT_ALLOWED: stage %v is not allowed in environment %v", [input.resource.stage, input.environment])
}

deny contains "REVOKED: the version is revoked" if {
	gate
	input.resource.revoked != false
}

deny contains "QUARANTINED: the version is quarantined" if {
	gate
	input.resource.quarantined != false
}

deny contains "DIGEST_MISMATCH: artifact sha256 differs from the Registry's artifact_digest" if {
	gate
	not same(input.artifact.sha256, input.resource.artifact_digest)
}

deny contains "SIGNATURE_MISSING: no model signature" if {
	input.signature.present != true
}

deny contains "SIGNATURE_INVALID: the model signature is not valid" if {
	input.signature.present == true
	input.signature.valid != true
}

deny contains "ATTESTATION_MISSING: no attestation" if {
	attestation_checked
	input.attestation.present != true
}

deny contains "ATTESTATION_INVALID: the attestation is not valid" if {
	attestation_checked
	input.attestation.present == true
	input.attestation.valid != true
}

deny contains msg if {
	attestation_checked
	input.attestation.present == true
	not same(input.attestation.subject, input.artifact.sha256)
	msg := sprintf("ATTESTATION_SUBJECT_MISMATCH: attestation subject %v != artifact sha256 %v", [input.attestation.subject, input.artifact.sha256])
}

deny contains "POLICY_DIGEST_MISMATCH: runtime policy digest differs from the Registry's" if {
	gate
	not same(input.runtime.policy_digest, input.resource.policy_digest)
}

deny contains msg if {
	gate
	not same(input.requester.tenant, input.resource.tenant)
	msg := sprintf("TENANT_MISMATCH: requester tenant %v, model tenant %v", [input.requester.tenant, input.resource.tenant])
}

deny contains "PURPOSE_NOT_ALLOWED: no requester purpose is allowed by the model card" if {
	gate
	not purpose_ok
}

deny contains msg if {
	gate
	not revalidation_ok
	msg := sprintf("REVALIDATION_OVERDUE: now is past revalidate_by %v", [input.resource.lifecycle.revalidate_by])
}
