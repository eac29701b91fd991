//! Schema helpers shared by the spec and the status types.

/// The schema of an optional enum without the `null` that kube adds to the allowed values: these
/// fields are omitted, never null, and "supported values: ..., null" only confuses users.
pub(crate) fn optional_enum<T: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    T::json_schema(generator)
}
