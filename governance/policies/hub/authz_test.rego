# Tests of authz.rego, run by `opa test governance/policies` (infra/opa.sh test, and the unit
# suite whenever the opa binary is built). rego-cpp 1.5.2 cannot run them: it crashes (SIGSEGV)
# when a rule that calls any built-in is evaluated under `with input as`. The same cases are
# therefore also driven from Python over both engines (governance/policycases.py), and those
# are what `hub policy propose` runs before it accepts a change.
package hub.authz_test

import rego.v1

import data.hub.authz

now := 1764000000000000000

person(id, roles, tenant) := {"id": id, "roles": roles, "tenant": tenant, "attributes": {}}

req(principal, action, resource, ctx) := {
	"principal": principal,
	"action": action,
	"resource": resource,
	"context": object.union({"now": now}, ctx),
}

analyst := person("ann", ["analyst"], "acme")

test_role_table_allows if {
	d := authz.decision with input as req(analyst, "event.read", "topics/trades", {})
	d.allow
	d.reason == "role 'analyst' grants 'event.read'"
}

test_role_table_denies if {
	d := authz.decision with input as req(analyst, "event.publish", "topics/trades", {})
	not d.allow
	d.reason == "no role of principal 'ann' (roles: analyst) grants 'event.publish' on 'topics/trades'"
}

test_every_role_gets_exactly_its_actions if {
	every role in data.hub.roles {
		every action in data.hub.actions {
			d := authz.decision with input as req(person("p", [role], "acme"), action, "r", {})
			granted := action in data.hub.role_actions[role]
			d.allow == granted
		}
	}
}

test_unknown_action_is_denied if {
	d := authz.decision with input as req(person("root", ["admin"], "acme"), "nuke.all", "r", {})
	not d.allow
	d.reason == "unknown action 'nuke.all'"
}

test_tenant_isolation if {
	d := authz.decision with input as req(analyst, "event.read", "r", {"tenant": "globex"})
	not d.allow
	startswith(d.reason, "tenant isolation:")
}

test_admin_crosses_tenants if {
	d := authz.decision with input as req(person("root", ["admin"], "acme"), "event.read", "r", {"tenant": "globex"})
	d.allow
	d.row_filter == {}
	d.mask == []
}

test_reads_are_filtered_to_own_tenant_and_masked if {
	d := authz.decision with input as req(analyst, "event.read", "r", {})
	d.row_filter == {"tenant": "acme"}
	d.mask == ["pii"]
}

test_open_investigation_unmasks if {
	ctx := {"purpose": "investigation", "case": "CASE-7", "open_cases": ["CASE-7"]}
	d := authz.decision with input as req(analyst, "event.read", "r", ctx)
	d.allow
	d.mask == []
}

test_closed_investigation_stays_masked if {
	ctx := {"purpose": "investigation", "case": "CASE-8", "open_cases": ["CASE-7"], "known_cases": ["CASE-7", "CASE-8"]}
	d := authz.decision with input as req(analyst, "event.read", "r", ctx)
	d.allow
	d.mask == ["pii"]
}

test_unknown_case_is_denied if {
	ctx := {"purpose": "investigation", "case": "CASE-8", "open_cases": ["CASE-7"]}
	d := authz.decision with input as req(analyst, "event.read", "r", ctx)
	not d.allow
	startswith(d.reason, "purpose of use: case 'CASE-8'")
}

case7(expires_at, who, tenant) := {"purpose": "investigation", "case": "CASE-7", "known_cases": ["CASE-7"], "open_cases": [{"id": "CASE-7", "investigators": [who], "tenant": tenant, "expires_at": expires_at}]}

test_open_case_object_unmasks_and_grants_pii_read if {
	d := authz.decision with input as req(analyst, "event.read", "r", case7(now + 1, "ann", "acme"))
	d.mask == []
	p := authz.decision with input as req(analyst, "pii.read", "views", case7(now + 1, "ann", "acme"))
	p.allow
}

test_expired_or_foreign_case_stays_masked if {
	every ctx in [case7(now, "ann", "acme"), case7(now + 1, "bob", "acme"), case7(now + 1, "ann", "globex")] {
		d := authz.decision with input as req(analyst, "event.read", "r", ctx)
		d.mask == ["pii"]
	}
}

grant(expires_at) := {
	"id": "g-1",
	"principal": "ann",
	"actions": ["event.publish"],
	"resource": "topics/",
	"expires_at": expires_at,
}

test_valid_grant_allows if {
	d := authz.decision with input as req(analyst, "event.publish", "topics/trades", {"grants": [grant(now + 1)]})
	d.allow
	d.reason == "grant 'g-1' grants 'event.publish' until it expires"
}

test_expired_grant_denies if {
	d := authz.decision with input as req(analyst, "event.publish", "topics/trades", {"grants": [grant(now)]})
	not d.allow
	startswith(d.reason, "grant 'g-1' for 'event.publish' has expired")
}

test_grant_needs_now if {
	r := json.remove(req(analyst, "event.publish", "topics/trades", {"grants": [grant(now + 1)]}), ["context/now"])
	d := authz.decision with input as r
	not d.allow
}

test_grant_is_scoped_to_its_resource if {
	d := authz.decision with input as req(analyst, "event.publish", "topics/payments", {"grants": [object.union(grant(now + 1), {"resource": "topics/trades"})]})
	not d.allow
}

test_malformed_input_is_denied if {
	d := authz.decision with input as {"principal": "ann", "action": 3}
	not d.allow
	startswith(d.reason, "malformed input:")
}

test_decision_is_always_defined if {
	d := authz.decision with input as []
	d.allow == false
}
