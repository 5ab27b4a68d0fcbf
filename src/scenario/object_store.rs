//! The `object_store:` key's two spellings: a provider name (`s3`, `azure`) as shorthand, or
//! the full map of `ObjectStoreSpec`; and its JSON Schema, which admits both. Pure; never
//! decides what a backend can honour (`validate.rs` does).

use std::fmt;

use schemars::{Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};

use super::model::{ObjectStoreSpec, Provider};

/// `object_store: azure`, `object_store: s3` or `object_store: { ... }`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectStoreSpec, D::Error> {
    struct Either;
    impl<'de> Visitor<'de> for Either {
        type Value = ObjectStoreSpec;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("`s3`, `azure`, or a map such as `{ provider: azure }`")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<ObjectStoreSpec, E> {
            let provider = match v {
                "s3" => Provider::S3,
                "azure" => Provider::Azure,
                other => return Err(E::unknown_variant(other, &["s3", "azure"])),
            };
            Ok(ObjectStoreSpec {
                provider,
                ..ObjectStoreSpec::default()
            })
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ObjectStoreSpec, A::Error> {
            ObjectStoreSpec::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(Either)
}

/// The schema of both spellings.
pub fn schema(generator: &mut SchemaGenerator) -> Schema {
    let full = generator.subschema_for::<ObjectStoreSpec>();
    json_schema!({
        "description": "The object store: `s3` (default) or `azure` as shorthand, or the full settings.",
        "anyOf": [
            { "type": "string", "enum": ["s3", "azure"] },
            full
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::{AzureCredentials, Provider};
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[serde(deserialize_with = "deserialize")]
        object_store: ObjectStoreSpec,
    }

    fn parse(yaml: &str) -> Result<ObjectStoreSpec, String> {
        yaml_serde::from_str::<Doc>(yaml)
            .map(|d| d.object_store)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn shorthand_and_map_mean_the_same() {
        let short = parse("object_store: azure").unwrap();
        assert_eq!(short.provider, Provider::Azure);
        assert_eq!(short, parse("object_store: { provider: azure }").unwrap());
        assert_eq!(
            parse("object_store: s3").unwrap(),
            ObjectStoreSpec::default()
        );
        let sas = parse("object_store: { provider: azure, azure: { credentials: sas } }").unwrap();
        assert_eq!(sas.azure_credentials(), AzureCredentials::Sas);
        assert_eq!(
            short.azure_credentials(),
            AzureCredentials::ConnectionString
        );
    }

    #[test]
    fn typos_are_errors_naming_what_is_allowed() {
        let e = parse("object_store: gcs").unwrap_err();
        assert!(e.contains("gcs") && e.contains("azure"), "{e}");
        let e = parse("object_store: { provider: azure, azur: {} }").unwrap_err();
        assert!(e.contains("azur"), "{e}");
        let e =
            parse("object_store: { provider: azure, azure: { credentials: token } }").unwrap_err();
        assert!(e.contains("token"), "{e}");
    }
}
