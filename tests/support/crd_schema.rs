//! Offline validation of Kubernetes manifests, as strict as the API server's structural schema
//! with `fieldValidation=Strict`, for tests that render manifests without a cluster.
//!
//! * Custom resources are checked against `spec.versions[].schema.openAPIV3Schema` of the
//!   CustomResourceDefinitions found (recursively, `*.yaml`/`*.yml`, multi-document) under
//!   [`crds_dir`]: `$PGDRILL_CRDS_DIR`, else `../shared/crds` next to the crate. Before handing a
//!   schema to the `jsonschema` crate (draft 4, the closest draft to OpenAPI v3.0) it is rewritten:
//!   - `nullable: true` adds `null` to `type` (and to `enum`/`anyOf` when present);
//!   - `x-kubernetes-int-or-string: true` becomes `type: [integer, string]`;
//!   - every object schema (`type: object` or `properties`) without `additionalProperties` and
//!     without `x-kubernetes-preserve-unknown-fields: true` gets `additionalProperties: false`,
//!     which is what pruning + strict field validation do to unknown fields (an object schema
//!     with neither properties nor additionalProperties keeps no field at all, as on the server);
//!   - `x-kubernetes-list-type: set` becomes `uniqueItems: true`; `map` lists are checked by hand
//!     for duplicate `x-kubernetes-list-map-keys` tuples;
//!   - `type: integer` with `format: int32`/`int64` gets the range as `minimum`/`maximum`
//!     (the server checks numbers against their format); `format: byte` must be base64;
//!     other formats are checked as the draft-4 validator knows them (`date-time`, ...);
//!   - schema `default`s are applied to a copy of the object before validation, as the server
//!     defaults before it validates (so a required field with a default may be omitted).
//! * The root `metadata` (just `type: object` in a CRD) is checked as `ObjectMeta`: a typed round
//!   trip (unknown fields), a `name` (DNS-1123 label for Cluster, Backup and Namespace, DNS-1035
//!   label for Service, DNS-1123 subdomain otherwise), a `namespace` (a DNS-1123 label) exactly
//!   when the kind is namespaced, label keys/values and annotation keys syntax, and none of the
//!   fields only the server sets (`uid`, `resourceVersion`, `creationTimestamp`, ...).
//! * `apiVersion`/`kind` must name a served version of a loaded CRD, or a built-in type from the
//!   table in [`core_kinds`].
//! * Built-in objects (Namespace, Secret, anything in core `v1`, ...) are deserialized into the
//!   k8s-openapi type. Those types ignore unknown fields, so the typed value is serialized again and
//!   compared with the original: a field lost in the round trip is an unknown field, a changed
//!   value is a value the server would not keep as written. Type errors are located by parsing a
//!   one-value-per-line rendering of the object and mapping the error's line to a JSON pointer.
//!   Secret/ConfigMap data keys must be valid config keys.
//!
//! `x-kubernetes-validations` (CEL) cannot be run by a JSON-schema validator. Every rule is
//! collected at load ([`Registry::cel_rules`], [`Registry::cel_summary`]); transition rules (those
//! using `oldSelf`) do not run on create and are not applicable; the others are checked by a
//! hand-written equivalent when the rule text (whitespace ignored) is one of [`cel_equivalent`]'s,
//! and skipped (and counted) otherwise. The rules in CNPG 1.30 + plugin-barman-cloud 0.14:
//!
//! | CRD | location | rule | here |
//! |-----|----------|------|------|
//! | Cluster | spec.bootstrap.initdb | `!has(self.builtinLocale) \|\| self.localeProvider == 'builtin'` | by hand |
//! | Cluster | spec.bootstrap.initdb | `!has(self.icuLocale) \|\| self.localeProvider == 'icu'` | by hand |
//! | Cluster | spec.bootstrap.initdb | `!has(self.icuRules) \|\| self.localeProvider == 'icu'` | by hand |
//! | Cluster | spec.imageCatalogRef | `self.kind == 'ImageCatalog' \|\| self.kind == 'ClusterImageCatalog'` | by hand |
//! | Cluster | spec.imageCatalogRef | `self.apiGroup == 'postgresql.cnpg.io'` | by hand |
//! | Cluster | spec.postgresql.synchronous.number | `self > 0` | by hand |
//! | Cluster | spec.postgresql.synchronous | dataDurability `preferred` needs empty standbyNamesPre/Post | by hand |
//! | Cluster | spec.serviceAccountName | `self == oldSelf` | transition, n/a on create |
//! | Cluster | spec | `!(has(self.imageCatalogRef) && has(self.imageName))` | by hand |
//! | Backup | spec | `oldSelf == self` | transition, n/a on create |
//! | ScheduledBackup | spec.cluster | `self == oldSelf` | transition, n/a on create |
//! | ObjectStore | spec.configuration | `!has(self.serverName)` | by hand |
//! | ObjectStore | spec.instanceSidecarConfiguration.additionalContainerArgs | `!self.exists(a, a.startsWith('--log-level'))` | by hand |
//!
//! As in CEL, reading an absent field is an evaluation error, which the server reports as a
//! rejection. Not modelled: admission webhooks (the CNPG operator's validating webhook checks far
//! more), `x-kubernetes-embedded-resource` (no such field in these CRDs), the null-pruning the
//! server applies to non-nullable fields (null is rejected here, which is stricter), and the
//! server's more lenient `date-time` layouts (strict RFC 3339 here).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Environment variable overriding the CRD directory.
pub const CRDS_DIR_ENV: &str = "PGDRILL_CRDS_DIR";

/// One problem with a manifest, at a JSON pointer into it (`""` is the whole object).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "<root>: {}", self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

/// How an `x-kubernetes-validations` rule is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CelHandling {
    /// A hand-written equivalent runs.
    CheckedByHand,
    /// Uses `oldSelf`: runs on update only, so it does not apply to a create.
    Transition,
    /// Not checked: no CEL engine here and no hand-written equivalent.
    Skipped,
}

/// One `x-kubernetes-validations` rule of a loaded CRD.
#[derive(Debug, Clone)]
pub struct CelRule {
    pub api_version: String,
    pub kind: String,
    /// Where the rule sits, as an instance path (`*` for any list item or map value).
    pub location: String,
    pub rule: String,
    pub message: String,
    pub handling: CelHandling,
}

struct CrdVersion {
    api_version: String,
    kind: String,
    namespaced: bool,
    /// The schema as written in the CRD (defaults, CEL rules and list types are read from it).
    raw: Value,
    validator: jsonschema::Validator,
}

/// Validators for every served version of every CRD found, plus the built-in types.
pub struct Registry {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    crds: BTreeMap<(String, String), CrdVersion>,
    /// (group, kind) → served versions, to explain a wrong apiVersion.
    served: BTreeMap<(String, String), Vec<String>>,
    pub cel_rules: Vec<CelRule>,
}

/// The directory the CRDs are read from: `$PGDRILL_CRDS_DIR`, else `../shared/crds` relative to
/// the crate root.
pub fn crds_dir() -> PathBuf {
    match std::env::var_os(CRDS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crds"),
    }
}

/// The registry for [`crds_dir`], loaded once per test binary; `None` when the directory does
/// not exist. Panics when it exists but cannot be loaded (a broken CRD is a real failure).
pub fn registry() -> Option<&'static Registry> {
    static REGISTRY: OnceLock<Option<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let dir = crds_dir();
            if !dir.is_dir() {
                return None;
            }
            let registry = Registry::load_dir(&dir)
                .unwrap_or_else(|e| panic!("cannot load CRDs from {}: {e}", dir.display()));
            // Straight to the stderr handle: libtest captures `eprintln!`, not this.
            let summary = format!(
                "crd_schema: {} CRD versions from {}; {}\n",
                registry.crds.len(),
                dir.display(),
                registry.cel_summary()
            );
            let _ = std::io::stderr().write_all(summary.as_bytes());
            Some(registry)
        })
        .as_ref()
}

/// The registry, or — when the CRD directory is missing — a test failure if `$CI` is set, and
/// otherwise a loud banner on stderr and `None` (the caller returns without testing anything).
pub fn registry_or_skip(test: &str) -> Option<&'static Registry> {
    if let Some(registry) = registry() {
        return Some(registry);
    }
    let dir = crds_dir();
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    if ci {
        panic!(
            "{test}: CRD directory {} not found (set {CRDS_DIR_ENV}); CI is set, so this is a \
             failure rather than a skip",
            dir.display()
        );
    }
    // Not `eprintln!`: libtest would capture it and nobody would see it for a passing test.
    // One `write_all` per message so parallel tests do not interleave inside a line.
    static BANNER: std::sync::Once = std::sync::Once::new();
    BANNER.call_once(|| {
        let line = "!".repeat(78);
        let banner = format!(
            "\n{line}\n!! CRD directory {} not found: the CRD validation tests DID NOT RUN.\n!! \
             Point {CRDS_DIR_ENV} at a directory of CustomResourceDefinition YAML files to run \
             them.\n!! (With CI set this is a failure.)\n{line}\n",
            dir.display()
        );
        let _ = std::io::stderr().write_all(banner.as_bytes());
    });
    let note = format!("!! {test}: DID NOT RUN (no CRDs)\n");
    let _ = std::io::stderr().write_all(note.as_bytes());
    None
}

impl Registry {
    /// Loads every CustomResourceDefinition under `dir` (recursively).
    pub fn load_dir(dir: &Path) -> Result<Registry, String> {
        let mut files = Vec::new();
        collect_yaml_files(dir, &mut files)?;
        files.sort();
        let mut registry = Registry {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            crds: BTreeMap::new(),
            served: BTreeMap::new(),
            cel_rules: Vec::new(),
        };
        for file in &files {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut found = false;
            for document in yaml_serde::Deserializer::from_str(&text) {
                let doc: Value = serde::Deserialize::deserialize(document)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                    continue;
                }
                registry
                    .add_crd(&doc)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                found = true;
            }
            if found {
                registry.files.push(file.clone());
            }
        }
        if registry.crds.is_empty() {
            return Err(format!(
                "no served CustomResourceDefinition version under {}",
                dir.display()
            ));
        }
        Ok(registry)
    }

    fn add_crd(&mut self, crd: &Value) -> Result<(), String> {
        let api = crd.get("apiVersion").and_then(Value::as_str);
        if api != Some("apiextensions.k8s.io/v1") {
            return Err(format!(
                "CRD apiVersion {api:?} is not apiextensions.k8s.io/v1"
            ));
        }
        let spec = crd.get("spec").ok_or("CRD without spec")?;
        let group = str_at(spec, "/group")?;
        let kind = str_at(spec, "/names/kind")?;
        let namespaced = match str_at(spec, "/scope")? {
            "Namespaced" => true,
            "Cluster" => false,
            other => return Err(format!("unknown CRD scope {other}")),
        };
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or("CRD without spec.versions")?;
        for version in versions {
            let name = str_at(version, "/name")?;
            if version.get("served").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let raw = version
                .pointer("/schema/openAPIV3Schema")
                .ok_or_else(|| format!("{kind} {name}: no schema.openAPIV3Schema"))?
                .clone();
            let api_version = format!("{group}/{name}");
            let converted = convert_schema(&raw, true);
            let validator = jsonschema::draft4::options()
                .should_validate_formats(true)
                .with_format("byte", is_base64)
                .build(&converted)
                .map_err(|e| format!("{kind} {api_version}: schema does not compile: {e}"))?;
            collect_cel_rules(&raw, "", &api_version, kind, &mut self.cel_rules);
            self.served
                .entry((group.to_string(), kind.to_string()))
                .or_default()
                .push(name.to_string());
            self.crds.insert(
                (api_version.clone(), kind.to_string()),
                CrdVersion {
                    api_version,
                    kind: kind.to_string(),
                    namespaced,
                    raw,
                    validator,
                },
            );
        }
        Ok(())
    }

    /// One line: how many CEL rules there are and how each kind of them is handled, followed by
    /// the skipped rules, one per line.
    pub fn cel_summary(&self) -> String {
        let count = |h: CelHandling| self.cel_rules.iter().filter(|r| r.handling == h).count();
        let mut out = format!(
            "x-kubernetes-validations (CEL): {} rules, {} checked by hand-written equivalents, \
             {} transition rules (oldSelf; not evaluated on create), {} skipped",
            self.cel_rules.len(),
            count(CelHandling::CheckedByHand),
            count(CelHandling::Transition),
            count(CelHandling::Skipped),
        );
        for rule in self.skipped_cel_rules() {
            out.push_str(&format!(
                "\n  skipped: {} {} at {}: `{}` ({})",
                rule.api_version, rule.kind, rule.location, rule.rule, rule.message
            ));
        }
        out
    }

    pub fn skipped_cel_rules(&self) -> impl Iterator<Item = &CelRule> {
        self.cel_rules
            .iter()
            .filter(|r| r.handling == CelHandling::Skipped)
    }

    /// Whether a CRD serves `api_version`/`kind`.
    pub fn has_crd(&self, api_version: &str, kind: &str) -> bool {
        self.crds
            .contains_key(&(api_version.to_string(), kind.to_string()))
    }

    /// Every problem the API server (strict field validation, no webhooks) would report for a
    /// create of `object`, sorted by pointer. Empty means valid.
    pub fn validate(&self, object: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        let Some(root) = object.as_object() else {
            push(&mut out, "", "a manifest must be a JSON object");
            return out;
        };
        let api_version = root.get("apiVersion").and_then(Value::as_str);
        let kind = root.get("kind").and_then(Value::as_str);
        for (field, value) in [("apiVersion", api_version), ("kind", kind)] {
            if value.is_none_or(str::is_empty) {
                push(
                    &mut out,
                    &format!("/{field}"),
                    "Required value: a non-empty string",
                );
            }
        }
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return out;
        };
        if let Some(crd) = self.crds.get(&(api_version.to_string(), kind.to_string())) {
            self.validate_custom(crd, object, &mut out);
        } else if let Some(core) = core_kinds()
            .iter()
            .find(|c| c.api_version == api_version && c.kind == kind)
        {
            // The typed round trip of the whole object covers metadata's fields and types.
            check_metadata(root, api_version, kind, core.namespaced, false, &mut out);
            (core.check)(object, &mut out);
        } else {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let message = match self.served.get(&(group.to_string(), kind.to_string())) {
                Some(versions) => format!(
                    "apiVersion {api_version} is not served for kind {kind}; served: {}",
                    versions
                        .iter()
                        .map(|v| format!("{group}/{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => format!(
                    "no schema for apiVersion {api_version}, kind {kind}: neither a loaded CRD \
                     (from {}) nor a supported built-in type",
                    self.dir.display()
                ),
            };
            push(&mut out, "/kind", &message);
        }
        out.sort();
        out.dedup();
        out
    }

    fn validate_custom(&self, crd: &CrdVersion, object: &Value, out: &mut Vec<Violation>) {
        let root = object.as_object().expect("checked by the caller");
        check_metadata(root, &crd.api_version, &crd.kind, crd.namespaced, true, out);
        let mut defaulted = object.clone();
        apply_defaults(&crd.raw, &mut defaulted);
        for error in crd.validator.iter_errors(&defaulted) {
            let path = error.instance_path().as_str().to_string();
            match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for name in unexpected {
                        push(out, &join(&path, name), &unknown_field(name, &crd.kind));
                    }
                }
                ValidationErrorKind::FalseSchema => {
                    // `additionalProperties: false` on an object schema without properties:
                    // every key is unknown (the validator only names the first).
                    match defaulted.pointer(&path).and_then(Value::as_object) {
                        Some(map) => {
                            for name in map.keys() {
                                push(out, &join(&path, name), &unknown_field(name, &crd.kind));
                            }
                        }
                        None => push(out, &path, &error.to_string()),
                    }
                }
                ValidationErrorKind::Required { property } => {
                    let name = property
                        .as_str()
                        .map_or_else(|| property.to_string(), String::from);
                    push(
                        out,
                        &join(&path, &name),
                        "Required value: the CRD schema requires this field",
                    );
                }
                other => push(out, &path, &format!("{error} [{}]", other.keyword())),
            }
        }
        structural_checks(&crd.raw, &defaulted, "", out);
    }
}

fn unknown_field(name: &str, kind: &str) -> String {
    format!(
        "unknown field \"{name}\": not in the {kind} schema (pruned; strict field validation \
         rejects it)"
    )
}

fn push(out: &mut Vec<Violation>, pointer: &str, message: &str) {
    out.push(Violation {
        pointer: pointer.to_string(),
        message: message.to_string(),
    });
}

/// `base` + one escaped JSON-pointer segment.
pub fn join(base: &str, segment: &str) -> String {
    format!("{base}/{}", segment.replace('~', "~0").replace('/', "~1"))
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string at {pointer}"))
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            collect_yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Schema conversion, defaults, structural checks

fn is_true(schema: &Map<String, Value>, key: &str) -> bool {
    schema.get(key) == Some(&Value::Bool(true))
}

/// OpenAPI v3 structural schema → draft-4 JSON schema that rejects what the server rejects.
fn convert_schema(schema: &Value, is_root: bool) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = obj.clone();
    if let Some(Value::Object(props)) = obj.get("properties") {
        let converted: Map<String, Value> = props
            .iter()
            .map(|(name, prop)| {
                let prop = if is_root && name == "metadata" {
                    // Checked as ObjectMeta by `check_metadata`.
                    json!({"type": "object"})
                } else {
                    convert_schema(prop, false)
                };
                (name.clone(), prop)
            })
            .collect();
        out.insert("properties".into(), Value::Object(converted));
    }
    for key in ["items", "not"] {
        if let Some(sub) = obj.get(key) {
            out.insert(key.into(), convert_schema(sub, false));
        }
    }
    if let Some(ap @ Value::Object(_)) = obj.get("additionalProperties") {
        out.insert("additionalProperties".into(), convert_schema(ap, false));
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(Value::Array(list)) = obj.get(key) {
            let list = list.iter().map(|s| convert_schema(s, false)).collect();
            out.insert(key.into(), Value::Array(list));
        }
    }

    let preserve = is_true(obj, "x-kubernetes-preserve-unknown-fields");
    if is_true(obj, "x-kubernetes-int-or-string") {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    let is_object =
        obj.get("type").and_then(Value::as_str) == Some("object") || obj.contains_key("properties");
    if is_object && !preserve && !obj.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if obj.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        out.insert("uniqueItems".into(), Value::Bool(true));
    }
    if obj.get("type").and_then(Value::as_str) == Some("integer") {
        let range = match obj.get("format").and_then(Value::as_str) {
            Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
            Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
            _ => None,
        };
        if let Some((min, max)) = range {
            out.entry("minimum").or_insert(min);
            out.entry("maximum").or_insert(max);
        }
    }
    if is_true(obj, "nullable") {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = t.clone();
                out.insert("type".into(), json!([t, "null"]));
            }
            Some(Value::Array(types)) => types.push(json!("null")),
            _ => {}
        }
        if let Some(Value::Array(options)) = out.get_mut("enum") {
            options.push(Value::Null);
        }
        if let Some(Value::Array(options)) = out.get_mut("anyOf") {
            options.push(json!({"type": "null"}));
        }
    }
    Value::Object(out)
}

/// Fills in schema defaults the way the server does before validating.
fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (name, prop) in props {
                    if !map.contains_key(name)
                        && let Some(default) = prop.get("default")
                    {
                        map.insert(name.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(name) {
                        apply_defaults(prop, child);
                    }
                }
            }
            if let Some(ap @ Value::Object(_)) = schema.get("additionalProperties") {
                for child in map.values_mut() {
                    apply_defaults(ap, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for child in items {
                    apply_defaults(item_schema, child);
                }
            }
        }
        _ => {}
    }
}

/// CEL rules with hand-written equivalents and `x-kubernetes-list-type: map` key uniqueness.
fn structural_checks(schema: &Value, value: &Value, pointer: &str, out: &mut Vec<Violation>) {
    if value.is_null() {
        return;
    }
    if let Some(Value::Array(rules)) = schema.get("x-kubernetes-validations") {
        for rule in rules {
            let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            if is_transition_rule(text) {
                continue;
            }
            let Some(check) = cel_equivalent(text) else {
                continue;
            };
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| format!("failed rule: {text}"), String::from);
            match check(value) {
                Ok(true) => {}
                Ok(false) => {
                    let at = match rule.get("fieldPath").and_then(Value::as_str) {
                        Some(field_path) => field_path
                            .split('.')
                            .filter(|s| !s.is_empty())
                            .fold(pointer.to_string(), |p, s| join(&p, s)),
                        None => pointer.to_string(),
                    };
                    push(
                        out,
                        &at,
                        &format!("Invalid value: {message} (x-kubernetes-validations `{text}`)"),
                    );
                }
                Err(e) => push(
                    out,
                    pointer,
                    &format!(
                        "x-kubernetes-validations `{text}` fails to evaluate ({e}); the API \
                         server rejects the object"
                    ),
                ),
            }
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (name, prop) in props {
                    if let Some(child) = map.get(name) {
                        structural_checks(prop, child, &join(pointer, name), out);
                    }
                }
            }
            if let Some(ap @ Value::Object(_)) = schema.get("additionalProperties") {
                for (name, child) in map {
                    structural_checks(ap, child, &join(pointer, name), out);
                }
            }
        }
        Value::Array(items) => {
            if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                check_list_map(schema, items, pointer, out);
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, child) in items.iter().enumerate() {
                    structural_checks(item_schema, child, &join(pointer, &i.to_string()), out);
                }
            }
        }
        _ => {}
    }
}

fn check_list_map(schema: &Value, items: &[Value], pointer: &str, out: &mut Vec<Violation>) {
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let tuple: Vec<Value> = keys
            .iter()
            .map(|k| {
                item.get(*k)
                    .or_else(|| schema.pointer(&format!("/items/properties/{k}/default")))
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect();
        let tuple = Value::Array(tuple).to_string();
        if let Some(first) = seen.insert(tuple.clone(), i) {
            push(
                out,
                &join(pointer, &i.to_string()),
                &format!(
                    "Duplicate value: list-map key ({}) {tuple} already used by item {first}",
                    keys.join(", ")
                ),
            );
        }
    }
}

fn is_transition_rule(rule: &str) -> bool {
    rule.contains("oldSelf")
}

type CelCheck = fn(&Value) -> Result<bool, String>;

fn cel_has(value: &Value, field: &str) -> bool {
    value.as_object().is_some_and(|m| m.contains_key(field))
}

/// `self.field` as CEL reads it: an absent field is an evaluation error.
fn cel_get<'a>(value: &'a Value, field: &str) -> Result<&'a Value, String> {
    value
        .get(field)
        .ok_or_else(|| format!("no such key: {field}"))
}

fn cel_str_eq(value: &Value, field: &str, expected: &str) -> Result<bool, String> {
    Ok(cel_get(value, field)?.as_str() == Some(expected))
}

fn cel_empty_or_absent(value: &Value, field: &str) -> bool {
    !cel_has(value, field) || value[field].as_array().is_some_and(Vec::is_empty)
}

/// A hand-written equivalent of a CEL rule, by rule text with all whitespace removed.
pub fn cel_equivalent(rule: &str) -> Option<CelCheck> {
    let compact: String = rule.chars().filter(|c| !c.is_whitespace()).collect();
    let check: CelCheck = match compact.as_str() {
        "!has(self.builtinLocale)||self.localeProvider=='builtin'" => {
            |s| Ok(!cel_has(s, "builtinLocale") || cel_str_eq(s, "localeProvider", "builtin")?)
        }
        "!has(self.icuLocale)||self.localeProvider=='icu'" => {
            |s| Ok(!cel_has(s, "icuLocale") || cel_str_eq(s, "localeProvider", "icu")?)
        }
        "!has(self.icuRules)||self.localeProvider=='icu'" => {
            |s| Ok(!cel_has(s, "icuRules") || cel_str_eq(s, "localeProvider", "icu")?)
        }
        "self.kind=='ImageCatalog'||self.kind=='ClusterImageCatalog'" => |s| {
            Ok(cel_str_eq(s, "kind", "ImageCatalog")?
                || cel_str_eq(s, "kind", "ClusterImageCatalog")?)
        },
        "self.apiGroup=='postgresql.cnpg.io'" => {
            |s| cel_str_eq(s, "apiGroup", "postgresql.cnpg.io")
        }
        "self>0" => |s| {
            s.as_f64()
                .map(|n| n > 0.0)
                .ok_or_else(|| "not a number".to_string())
        },
        "self.dataDurability!='preferred'||((!has(self.standbyNamesPre)||self.standbyNamesPre.size()==0)&&(!has(self.standbyNamesPost)||self.standbyNamesPost.size()==0))" => {
            |s| {
                Ok(!cel_str_eq(s, "dataDurability", "preferred")?
                    || (cel_empty_or_absent(s, "standbyNamesPre")
                        && cel_empty_or_absent(s, "standbyNamesPost")))
            }
        }
        "!(has(self.imageCatalogRef)&&has(self.imageName))" => {
            |s| Ok(!(cel_has(s, "imageCatalogRef") && cel_has(s, "imageName")))
        }
        "!has(self.serverName)" => |s| Ok(!cel_has(s, "serverName")),
        "!self.exists(a,a.startsWith('--log-level'))" => |s| {
            let list = s.as_array().ok_or_else(|| "not a list".to_string())?;
            Ok(!list
                .iter()
                .any(|a| a.as_str().is_some_and(|a| a.starts_with("--log-level"))))
        },
        _ => return None,
    };
    Some(check)
}

fn collect_cel_rules(
    schema: &Value,
    location: &str,
    api_version: &str,
    kind: &str,
    out: &mut Vec<CelRule>,
) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    if let Some(Value::Array(rules)) = obj.get("x-kubernetes-validations") {
        for rule in rules {
            let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            let handling = if is_transition_rule(text) {
                CelHandling::Transition
            } else if cel_equivalent(text).is_some() {
                CelHandling::CheckedByHand
            } else {
                CelHandling::Skipped
            };
            out.push(CelRule {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                location: if location.is_empty() {
                    "/".into()
                } else {
                    location.into()
                },
                rule: text.to_string(),
                message: rule
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                handling,
            });
        }
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (name, prop) in props {
            collect_cel_rules(prop, &join(location, name), api_version, kind, out);
        }
    }
    for (key, segment) in [("items", "*"), ("additionalProperties", "*")] {
        if let Some(sub) = obj.get(key) {
            collect_cel_rules(sub, &join(location, segment), api_version, kind, out);
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(Value::Array(list)) = obj.get(key) {
            for sub in list {
                collect_cel_rules(sub, location, api_version, kind, out);
            }
        }
    }
}

/// Go's `base64.StdEncoding` (padded), which the server uses for `format: byte`.
fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return false;
    }
    bytes[..bytes.len() - padding]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

// ---------------------------------------------------------------------------------------------
// metadata

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    Dns1123Label,
    Dns1035Label,
    Dns1123Subdomain,
}

fn name_rule(api_version: &str, kind: &str) -> NameRule {
    match (api_version, kind) {
        ("postgresql.cnpg.io/v1", "Cluster" | "Backup") | ("v1", "Namespace") => {
            NameRule::Dns1123Label
        }
        ("v1", "Service") => NameRule::Dns1035Label,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Fields of ObjectMeta only the server sets.
const SERVER_SET_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn check_metadata(
    root: &Map<String, Value>,
    api_version: &str,
    kind: &str,
    namespaced: bool,
    typed_round_trip: bool,
    out: &mut Vec<Violation>,
) {
    let Some(meta) = root.get("metadata") else {
        push(out, "/metadata", "Required value: metadata");
        return;
    };
    let Some(map) = meta.as_object() else {
        push(
            out,
            "/metadata",
            "Invalid value: metadata must be an object",
        );
        return;
    };
    if typed_round_trip {
        typed_roundtrip::<ObjectMeta>(meta, "/metadata", out);
    }
    for field in SERVER_SET_METADATA {
        if map.contains_key(*field) {
            push(
                out,
                &join("/metadata", field),
                "Forbidden: set by the API server; a manifest to create must not carry it",
            );
        }
    }
    match map.get("name") {
        Some(Value::String(name)) => {
            let rule = name_rule(api_version, kind);
            let checked = match rule {
                NameRule::Dns1123Label => dns1123_label(name),
                NameRule::Dns1035Label => dns1035_label(name),
                NameRule::Dns1123Subdomain => dns1123_subdomain(name),
            };
            if let Err(e) = checked {
                push(
                    out,
                    "/metadata/name",
                    &format!("Invalid value {name:?}: {kind} names must be {e}"),
                );
            }
        }
        Some(_) => push(out, "/metadata/name", "Invalid value: must be a string"),
        None => push(
            out,
            "/metadata/name",
            "Required value: name (generateName is not enough: pgdrill refers to objects by name)",
        ),
    }
    match (namespaced, map.get("namespace")) {
        (true, Some(Value::String(ns))) => {
            if let Err(e) = dns1123_label(ns) {
                push(
                    out,
                    "/metadata/namespace",
                    &format!("Invalid value {ns:?}: namespaces must be {e}"),
                );
            }
        }
        (true, Some(_)) => push(
            out,
            "/metadata/namespace",
            "Invalid value: must be a string",
        ),
        (true, None) => push(
            out,
            "/metadata/namespace",
            &format!("Required value: {kind} is namespaced; manifests must say where they go"),
        ),
        (false, Some(_)) => push(
            out,
            "/metadata/namespace",
            &format!("Forbidden: {kind} is cluster-scoped"),
        ),
        (false, None) => {}
    }
    if let Some(Value::Object(labels)) = map.get("labels") {
        for (key, value) in labels {
            let at = join("/metadata/labels", key);
            if let Err(e) = qualified_name(key) {
                push(out, &at, &format!("Invalid label key {key:?}: {e}"));
            }
            if let Some(value) = value.as_str()
                && let Err(e) = label_value(value)
            {
                push(out, &at, &format!("Invalid label value {value:?}: {e}"));
            }
        }
    }
    if let Some(Value::Object(annotations)) = map.get("annotations") {
        let mut total = 0;
        for (key, value) in annotations {
            total += key.len() + value.as_str().map_or(0, str::len);
            if let Err(e) = qualified_name(key) {
                push(
                    out,
                    &join("/metadata/annotations", key),
                    &format!("Invalid annotation key {key:?}: {e}"),
                );
            }
        }
        if total > 256 * 1024 {
            push(
                out,
                "/metadata/annotations",
                &format!("Too long: annotations total {total} bytes, the limit is 262144"),
            );
        }
    }
}

const DNS1123_LABEL: &str = "a DNS-1123 label: at most 63 lowercase alphanumerics or '-', starting and ending with an \
     alphanumeric";

pub fn dns1123_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(DNS1123_LABEL.into())
    }
}

pub fn dns1035_label(s: &str) -> Result<(), String> {
    dns1123_label(s)
        .ok()
        .filter(|()| s.starts_with(|c: char| c.is_ascii_lowercase()))
        .ok_or_else(|| "a DNS-1035 label: a DNS-1123 label starting with a letter".into())
}

pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(
            "a DNS-1123 subdomain: at most 253 characters, lowercase alphanumerics, '-' and '.', \
             each dot-separated part starting and ending with an alphanumeric"
                .into(),
        )
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS-1123 subdomain.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|e| format!("the prefix must be {e}"))?;
    }
    if qualified_name_part(name) {
        Ok(())
    } else {
        Err(
            "the name part must be at most 63 alphanumerics, '-', '_' or '.', starting and \
             ending with an alphanumeric"
                .into(),
        )
    }
}

pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || qualified_name_part(s) {
        Ok(())
    } else {
        Err(
            "must be empty or at most 63 alphanumerics, '-', '_' or '.', starting and ending \
             with an alphanumeric"
                .into(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// built-in types

/// A built-in type checked through its k8s-openapi struct.
pub struct CoreKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    check: fn(&Value, &mut Vec<Violation>),
}

fn is_namespaced<T: k8s_openapi::Resource>() -> bool
where
    T::Scope: 'static,
{
    std::any::TypeId::of::<T::Scope>()
        == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>()
}

fn check_typed<T: k8s_openapi::Resource + DeserializeOwned + Serialize>(
    value: &Value,
    out: &mut Vec<Violation>,
) {
    typed_roundtrip::<T>(value, "", out);
    if T::API_VERSION == "v1" && matches!(T::KIND, "Secret" | "ConfigMap") {
        for field in ["data", "stringData", "binaryData"] {
            if let Some(Value::Object(map)) = value.get(field) {
                for key in map.keys() {
                    let ok = !key.is_empty()
                        && key.len() <= 253
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                    if !ok {
                        push(
                            out,
                            &join(&format!("/{field}"), key),
                            "Invalid key: at most 253 alphanumerics, '-', '_' or '.'",
                        );
                    }
                }
            }
        }
    }
}

macro_rules! core_kinds {
    ($($t:ty),* $(,)?) => {
        vec![$(CoreKind {
            api_version: <$t as k8s_openapi::Resource>::API_VERSION,
            kind: <$t as k8s_openapi::Resource>::KIND,
            namespaced: is_namespaced::<$t>(),
            check: check_typed::<$t>,
        }),*]
    };
}

/// The built-in types a manifest may be.
pub fn core_kinds() -> &'static [CoreKind] {
    use k8s_openapi::api::{apps, batch, core, networking, rbac};
    static KINDS: OnceLock<Vec<CoreKind>> = OnceLock::new();
    KINDS.get_or_init(|| {
        core_kinds![
            core::v1::Namespace,
            core::v1::Secret,
            core::v1::ConfigMap,
            core::v1::Service,
            core::v1::ServiceAccount,
            core::v1::Pod,
            core::v1::PersistentVolumeClaim,
            core::v1::Endpoints,
            core::v1::LimitRange,
            core::v1::ResourceQuota,
            rbac::v1::Role,
            rbac::v1::RoleBinding,
            rbac::v1::ClusterRole,
            rbac::v1::ClusterRoleBinding,
            batch::v1::Job,
            apps::v1::Deployment,
            apps::v1::StatefulSet,
            networking::v1::NetworkPolicy,
        ]
    })
}

/// Deserializes `value` as `T` and serializes it back: a type error, a field lost (unknown to
/// `T`) or a value changed in the round trip is a violation. `base` prefixes the pointers.
pub fn typed_roundtrip<T: DeserializeOwned + Serialize>(
    value: &Value,
    base: &str,
    out: &mut Vec<Violation>,
) {
    let type_name = std::any::type_name::<T>()
        .rsplit("::")
        .next()
        .unwrap_or("type");
    let (text, pointers) = lined_json(value);
    let typed: T = match serde_json::from_str(&text) {
        Ok(typed) => typed,
        Err(e) => {
            let at = pointers
                .get(e.line().saturating_sub(1))
                .cloned()
                .unwrap_or_default();
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            push(
                out,
                &format!("{base}{at}"),
                &format!("does not deserialize as {type_name}: {message}"),
            );
            return;
        }
    };
    match serde_json::to_value(&typed) {
        Ok(back) => roundtrip_diff(value, &back, base, type_name, out),
        Err(e) => push(
            out,
            base,
            &format!("{type_name} does not serialize again: {e}"),
        ),
    }
}

fn roundtrip_diff(
    original: &Value,
    back: &Value,
    pointer: &str,
    type_name: &str,
    out: &mut Vec<Violation>,
) {
    match (original, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, va) in a {
                let at = join(pointer, key);
                match b.get(key) {
                    Some(vb) => roundtrip_diff(va, vb, &at, type_name, out),
                    None if va.is_null() => push(
                        out,
                        &at,
                        "null value: omit the field instead (it is either unknown or dropped)",
                    ),
                    None => push(out, &at, &unknown_field(key, type_name)),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                roundtrip_diff(va, vb, &join(pointer, &i.to_string()), type_name, out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        _ if original == back => {}
        _ => push(
            out,
            pointer,
            &format!(
                "Invalid value: {original} does not survive a typed round trip (became {back})"
            ),
        ),
    }
}

/// `value` as JSON text with one value (or container opening/closing) per line, and the JSON
/// pointer of each line, so a parse error's line number names the offending field.
fn lined_json(value: &Value) -> (String, Vec<String>) {
    fn line(text: &mut String, pointers: &mut Vec<String>, content: String, pointer: &str) {
        text.push_str(&content);
        text.push('\n');
        pointers.push(pointer.to_string());
    }
    fn emit(
        value: &Value,
        pointer: &str,
        prefix: &str,
        comma: bool,
        text: &mut String,
        pointers: &mut Vec<String>,
    ) {
        let c = if comma { "," } else { "" };
        match value {
            Value::Object(map) if !map.is_empty() => {
                line(text, pointers, format!("{prefix}{{"), pointer);
                let n = map.len();
                for (i, (key, child)) in map.iter().enumerate() {
                    let key_prefix = format!("{}: ", Value::String(key.clone()));
                    emit(
                        child,
                        &join(pointer, key),
                        &key_prefix,
                        i + 1 < n,
                        text,
                        pointers,
                    );
                }
                line(text, pointers, format!("}}{c}"), pointer);
            }
            Value::Array(items) if !items.is_empty() => {
                line(text, pointers, format!("{prefix}["), pointer);
                let n = items.len();
                for (i, child) in items.iter().enumerate() {
                    emit(
                        child,
                        &join(pointer, &i.to_string()),
                        "",
                        i + 1 < n,
                        text,
                        pointers,
                    );
                }
                line(text, pointers, format!("]{c}"), pointer);
            }
            scalar => line(text, pointers, format!("{prefix}{scalar}{c}"), pointer),
        }
    }
    let mut text = String::new();
    let mut pointers = Vec::new();
    emit(value, "", "", false, &mut text, &mut pointers);
    (text, pointers)
}
