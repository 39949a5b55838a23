# The hub's access policy: one decision for every route and command.
#
# Query it as `x = data.hub.authz.decision` (a bare `data.hub.authz.decision` query is undefined
# on regopy). The decision is ALWAYS defined, so every engine answers the same object:
#
#   {"allow": bool, "reason": string, "mask": [classification...], "row_filter": {field: value}}
#
# Input:
#   principal  {id: string, roles: [string], tenant: string, attributes: {string: string}}
#   action     string, one of data.hub.actions ("event.read", "policy.propose", ...)
#   resource   string, what is touched ("/v1/topics/trades/events", "topics/trades", "policy")
#   context    object, all optional:
#     now          integer, Unix time in nanoseconds (grants need it; without it none is valid)
#     tenant       string, the tenant that owns the resource (default: the principal's own)
#     purpose      string, purpose of use ("investigation", "reporting", ...)
#     case         string, the investigation case id when purpose is "investigation"
#     open_cases   [case], open investigations known to the hub (beside data.hub.open_cases);
#                  a plain string is a case id with no restriction (legacy form)
#     known_cases  [string], the id of every case the hub knows, open or closed
#     grants       [grant], time-bound grants known to the hub (beside data.hub.grants)
#   grant      {id, principal, actions: [string], resource: prefix or "*", expires_at: ns,
#               tenant (optional: the tenant it opens; default the principal's own)}
#   case       {id, investigators: [principal id], tenant, expires_at: ns}
#
# Rules, in the order the reason reports them:
#   1. malformed input is denied, naming every problem;
#   2. an action not in data.hub.actions is denied;
#   3. tenant isolation: a principal none of whose roles grants `tenant.all` acts only on its
#      own tenant, unless a valid grant opens that tenant to it;
#   4. purpose of use: a request with purpose "investigation" MUST name a case the hub knows
#      (open or closed); an unknown or missing case is denied;
#   5. allowed when one of its roles grants the action (data.hub.role_actions, generated from
#      core/roles.py), or a grant that has not expired does, or (`pii.read` only) an open
#      investigation does;
#   6. obligations on allowed reads: rows filtered to the principal's tenant (without
#      `tenant.all`), and classified fields masked unless a role grants `pii.read` or the
#      purpose is an open investigation: the named case is open, `context.now` is before its
#      expiry, the principal is one of its investigators and the resource is in its tenant.
#
# Strings are built with concat only (no sprintf of composite values) so that OPA and rego-cpp
# render every reason byte for byte the same. No time built-ins: `context.now` comes in.
# rego-cpp 1.5 quirk: the result of sort() on a SET cannot be indexed there (silently undefined);
# sort an array comprehension instead: `xs := sort([x | some x in s]); xs[0]`.
package hub.authz

import rego.v1

# The common request (well-formed, no grant anywhere, no investigation) is decided by `fast`
# in one rule body; anything else, or a bundle without `data.hub.index`, by the rules below.
# Both give the same decision wherever `fast` is defined (tests/unit/test_policy_fastpath.py
# compares them over generated inputs); `fast` is undefined, never wrong, outside its domain.
decision := d if {
	d := fast
} else := {
	"allow": allow,
	"reason": reason,
	"mask": mask,
	"row_filter": row_filter,
}

default allow := false

allow if {
	count(malformed) == 0
	action_known
	not cross_tenant
	not unknown_case
	count(granted_by) > 0
}

# -- 1. well-formed input --------------------------------------------------------------------
# Fields are read with object.get(..., null): OPA and rego-cpp disagree on `not f(x)` when x is
# an undefined reference (OPA hoists the reference out of the negation, so the rule fails), and
# a defined null behaves the same on both.
malformed contains "input must be an object" if not input_is_object

# A rule, not `not is_object(input)`: OPA takes `{"input": null}` as no input at all, and the
# negated call on an undefined input fails instead of holding.
input_is_object if is_object(input)

malformed contains "principal must be an object" if {
	is_object(input)
	not is_object(object.get(input, "principal", null))
}

malformed contains "principal.id must be a non-empty string" if {
	is_object(input.principal)
	not non_empty_string(object.get(input.principal, "id", null))
}

malformed contains "principal.roles must be an array of strings" if {
	is_object(input.principal)
	not is_array(object.get(input.principal, "roles", null))
}

malformed contains "principal.roles must be an array of strings" if {
	is_array(input.principal.roles)
	some role in input.principal.roles
	not is_string(role)
}

malformed contains "principal.tenant must be a non-empty string" if {
	is_object(input.principal)
	not non_empty_string(object.get(input.principal, "tenant", null))
}

malformed contains "action must be a non-empty string" if {
	is_object(input)
	not non_empty_string(object.get(input, "action", null))
}

malformed contains "resource must be a string" if {
	is_object(input)
	not is_string(object.get(input, "resource", null))
}

malformed contains "context must be an object" if {
	is_object(input)
	"context" in object.keys(input)
	not is_object(input.context)
}

malformed contains "context.tenant must be a non-empty string" if {
	"tenant" in object.keys(ctx)
	not non_empty_string(ctx.tenant)
}

malformed contains "context.now must be an integer (Unix nanoseconds)" if {
	"now" in object.keys(ctx)
	not is_number(ctx.now)
}

non_empty_string(s) if {
	is_string(s)
	s != ""
}

ctx := input.context if is_object(input.context)

else := {}

# -- 2. known action -------------------------------------------------------------------------
action_known if input.action in data.hub.actions

# -- 3. tenant isolation ---------------------------------------------------------------------
resource_tenant := ctx.tenant if non_empty_string(ctx.tenant)

else := input.principal.tenant

# A role that grants `tenant.all` (admin, in the shipped table) acts on every tenant.
all_tenants if role_grants("tenant.all")

cross_tenant if {
	resource_tenant != input.principal.tenant
	not all_tenants
	not tenant_granted
}

role_grants(action) if {
	some role in input.principal.roles
	some a in data.hub.role_actions[role]
	a == action
}

tenant_granted if {
	some g in valid_grants
	object.get(g, "tenant", "") == resource_tenant
}

# -- 4. roles and grants ---------------------------------------------------------------------
granting_roles contains role if {
	some role in input.principal.roles
	some action in data.hub.role_actions[role]
	action == input.action
}

all_grants := array.concat(
	data_grants,
	array_or_empty(object.get(ctx, "grants", [])),
)

array_or_empty(x) := x if is_array(x)

else := []

# data.hub is never read whole: it holds this package too (that would be a recursion).
data_grants := data.hub.grants if is_array(data.hub.grants)

else := []

data_open_cases := data.hub.open_cases if is_array(data.hub.open_cases)

else := []

# A grant that matches principal, action and resource, whatever its expiry.
matching_grants contains g if {
	some g in all_grants
	is_object(g)
	g.principal == input.principal.id
	some action in g.actions
	action == input.action
	resource_matches(g.resource)
}

resource_matches(prefix) if prefix == "*"

resource_matches(prefix) if {
	is_string(prefix)
	prefix != "*"
	startswith(input.resource, prefix)
}

valid_grants contains g if {
	some g in matching_grants
	is_number(ctx.now)
	is_number(g.expires_at)
	ctx.now < g.expires_at
}

expired_grants contains g if {
	some g in matching_grants
	not g in valid_grants
}

granted_by contains role if some role in granting_roles

granted_by contains grant_id(g) if some g in valid_grants

granted_by contains case_grant if case_grant

# -- purpose of use --------------------------------------------------------------------------
investigating if ctx.purpose == data.hub.investigation_purpose

named_case := ctx.case if non_empty_string(ctx.case)

else := ""

unknown_case if {
	investigating
	not named_case in open_case_ids
	not named_case in array_or_empty(object.get(ctx, "known_cases", []))
}

open_case_ids contains c if some c in open_cases

open_case_ids contains c.id if {
	some c in array_or_empty(object.get(ctx, "open_cases", []))
	is_object(c)
}

# An open investigation grants `pii.read` (the views ask for it by name).
case_grant := concat("", ["case '", named_case, "'"]) if {
	input.action == "pii.read"
	open_investigation
}

grant_id(g) := g.id if is_string(g.id)

else := "unnamed"

# -- reason: the first rule that decided -----------------------------------------------------
reason := concat("", ["malformed input: ", concat("; ", sort(malformed))]) if {
	count(malformed) > 0
} else := concat("", ["unknown action '", input.action, "'"]) if {
	not action_known
} else := msg if {
	cross_tenant
	msg := concat("", [
		"tenant isolation: principal '", input.principal.id, "' of tenant '",
		input.principal.tenant, "' may not act on tenant '", resource_tenant, "'",
	])
} else := msg if {
	unknown_case
	named_case == ""
	msg := "purpose of use: an investigation must name its case (X-Hub-Case)"
} else := msg if {
	unknown_case
	msg := concat("", [
		"purpose of use: case '", named_case, "' is not a case of this hub; open one with ",
		"`hub case open` or POST /v1/cases",
	])
} else := msg if {
	count(granting_roles) > 0
	roles := sort([r | some r in granting_roles])
	msg := concat("", ["role '", roles[0], "' grants '", input.action, "'"])
} else := msg if {
	count(valid_grants) > 0
	ids := sort([grant_id(g) | some g in valid_grants])
	msg := concat("", ["grant '", ids[0], "' grants '", input.action, "' until it expires"])
} else := msg if {
	case_grant
	msg := concat("", ["open investigation ", case_grant, " grants '", input.action, "'"])
} else := msg if {
	count(expired_grants) > 0
	ids := sort([grant_id(g) | some g in expired_grants])
	msg := concat("", [
		"grant '", ids[0], "' for '", input.action, "' has expired and no role of principal '",
		input.principal.id, "' grants it",
	])
} else := concat("", [
	"no role of principal '", input.principal.id, "' (roles: ", roles_text, ") grants '",
	input.action, "' on '", input.resource, "'",
])

roles_text := "none" if count(input.principal.roles) == 0

else := concat(", ", sort(input.principal.roles))

# -- 5. obligations --------------------------------------------------------------------------
is_read if input.action in data.hub.read_actions

row_filter := {"tenant": resource_tenant} if {
	allow
	is_read
	not all_tenants
} else := {}

mask := sort(data.hub.masked_classifications) if {
	allow
	is_read
	not unmasked
} else := []

# A role that grants `pii.read` sees classified fields (as the projection views do).
unmasked if role_grants("pii.read")

unmasked if open_investigation

open_investigation if {
	investigating
	named_case != ""
	named_case in open_cases
}

open_investigation if {
	investigating
	named_case != ""
	some c in array_or_empty(object.get(ctx, "open_cases", []))
	is_object(c)
	c.id == named_case
	case_active(c)
}

# Open (the hub passes only cases not closed), unexpired, naming the requester, same tenant.
case_active(c) if {
	is_number(ctx.now)
	is_number(c.expires_at)
	ctx.now < c.expires_at
	some who in array_or_empty(object.get(c, "investigators", []))
	who == input.principal.id
	object.get(c, "tenant", "") == resource_tenant
}

open_cases contains c if some c in data_open_cases

open_cases contains c if {
	some c in array_or_empty(object.get(ctx, "open_cases", []))
	is_string(c)
}

# -- the fast path -----------------------------------------------------------------------------
# `data.hub.index` is derived by the hub from this data whenever it reads a bundle (replacing
# any `index` key of data.json; core/policybundle.py, role_index); it holds the lookups:
#   actions {action: true}, read_actions {action: true}, role_actions {role: {action: true}},
#   mask (sorted masked_classifications), plain (true when data.hub.grants is empty).
# Without it (an OPA server started on this folder) `fast` is undefined: same decisions, slower.
# rego-cpp pays for every expression and every rule it evaluates (~10-20 us each here); a lookup
# costs a fraction of `x in array`, and this one body a fraction of the rules above. (Avoid
# destructuring, `[role] := roles`: it cost rego-cpp 1.5.2 about 2.8 ms.)
# Domain: one role, well-formed input with a context object and `now`, no grant in data or
# context, not an investigation: there no case, grant or expiry can matter, `malformed` is empty.
fast := {"allow": allowed, "reason": why, "mask": masked, "row_filter": filter} if {
	ix := data.hub.index
	ix.plain
	p := input.principal
	roles := p.roles
	is_array(roles) # count(null) is an error, not undefined (strict built-in errors)
	count(roles) == 1
	role := roles[0]
	table := ix.role_actions[role]
	id := p.id
	is_string(id)
	id != ""
	tenant := p.tenant
	is_string(tenant)
	tenant != ""
	action := input.action
	ix.actions[action]
	resource := input.resource
	is_string(resource)
	c := input.context
	is_object(c)
	is_number(c.now)
	rt := object.get(c, "tenant", tenant)
	is_string(rt)
	rt != ""
	not c.grants
	not c.purpose == data.hub.investigation_purpose

	cross := [1 | rt != tenant; not table["tenant.all"]] != []
	allowed := [1 | table[action]; not cross] != []
	why := fast_reason(cross, allowed, id, tenant, rt, role, action, resource)
	read := [1 | allowed; ix.read_actions[action]] != []
	filter := {"tenant": rt | read; not table["tenant.all"]}
	masked := [m | read; not table["pii.read"]; some m in ix.mask]
}

fast_reason(cross, allowed, id, tenant, rt, role, action, resource) := concat("", [
	"tenant isolation: principal '", id, "' of tenant '", tenant,
	"' may not act on tenant '", rt, "'",
]) if cross

else := concat("", ["role '", role, "' grants '", action, "'"]) if {
	allowed
} else := concat("", [
	"no role of principal '", id, "' (roles: ", role, ") grants '", action, "' on '", resource, "'",
])
