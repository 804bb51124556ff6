//! The subset of gnostic's `openapi.v2` protobuf messages (`openapiv2/OpenAPIv2.proto` in
//! google/gnostic-models) that the server fills, written as prost messages, and the conversion
//! from a Swagger 2.0 JSON document. kubectl 1.27/1.28 read `/openapi/v2` only in this form.
//!
//! Vendor extensions (`x-...`) are `NamedAny { name, Any { yaml } }` with the value as YAML text
//! (JSON is YAML), which is how kube-openapi encodes them and how kubectl decodes them. Keys the
//! subset has no field for are left out.

use serde_json::{Map, Value};

/// `openapi.v2.Document`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Document {
    /// Always `2.0`.
    #[prost(string, tag = "1")]
    pub swagger: String,
    /// Title and version.
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    /// The operations by path.
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    /// The named schemas.
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    /// `x-...` keys of the document.
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.Info`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    /// Title.
    #[prost(string, tag = "1")]
    pub title: String,
    /// Version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `openapi.v2.Any`: a value as YAML text.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    /// The value.
    #[prost(string, tag = "2")]
    pub yaml: String,
}

/// `openapi.v2.NamedAny`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAny {
    /// Key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

/// `openapi.v2.Paths`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Paths {
    /// `x-...` keys.
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    /// The paths, in document order.
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

/// `openapi.v2.NamedPathItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedPathItem {
    /// The path.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its operations.
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

/// `openapi.v2.PathItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathItem {
    /// GET.
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    /// PUT.
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    /// POST.
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    /// DELETE.
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    /// PATCH.
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    /// Parameters shared by the operations.
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    /// `x-...` keys.
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.Operation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    /// Tags.
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    /// Description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Unique id.
    #[prost(string, tag = "5")]
    pub operation_id: String,
    /// Response media types.
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    /// Request media types.
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    /// Parameters.
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    /// Responses by code.
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    /// Schemes.
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    /// `x-...` keys (`x-kubernetes-action`, `x-kubernetes-group-version-kind`).
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.ParametersItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParametersItem {
    /// The parameter.
    #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
    pub oneof: Option<ParametersItemOneof>,
}

/// The `oneof` of [`ParametersItem`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParametersItemOneof {
    /// An inline parameter.
    #[prost(message, tag = "1")]
    Parameter(Parameter),
    /// A `$ref`.
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// `openapi.v2.JsonReference`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JsonReference {
    /// The reference.
    #[prost(string, tag = "1")]
    pub _ref: String,
    /// Description.
    #[prost(string, tag = "2")]
    pub description: String,
}

/// `openapi.v2.Parameter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Parameter {
    /// Body or not.
    #[prost(oneof = "ParameterOneof", tags = "1, 2")]
    pub oneof: Option<ParameterOneof>,
}

/// The `oneof` of [`Parameter`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterOneof {
    /// `in: body`.
    #[prost(message, tag = "1")]
    BodyParameter(Box<BodyParameter>),
    /// Query, path, header or form.
    #[prost(message, tag = "2")]
    NonBodyParameter(NonBodyParameter),
}

/// `openapi.v2.BodyParameter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BodyParameter {
    /// Description.
    #[prost(string, tag = "1")]
    pub description: String,
    /// Name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Always `body`.
    #[prost(string, tag = "3")]
    pub r#in: String,
    /// Required.
    #[prost(bool, tag = "4")]
    pub required: bool,
    /// The body schema.
    #[prost(message, optional, tag = "5")]
    pub schema: Option<Schema>,
}

/// `openapi.v2.NonBodyParameter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NonBodyParameter {
    /// Where the parameter goes.
    #[prost(oneof = "NonBodyParameterOneof", tags = "3, 4")]
    pub oneof: Option<NonBodyParameterOneof>,
}

/// The `oneof` of [`NonBodyParameter`] (header and form data are not used).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyParameterOneof {
    /// `in: query`.
    #[prost(message, tag = "3")]
    QueryParameterSubSchema(SimpleParameter),
    /// `in: path`.
    #[prost(message, tag = "4")]
    PathParameterSubSchema(PathParameter),
}

/// `openapi.v2.QueryParameterSubSchema` (the fields used here).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SimpleParameter {
    /// Required.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// `query`.
    #[prost(string, tag = "2")]
    pub r#in: String,
    /// Description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Name.
    #[prost(string, tag = "4")]
    pub name: String,
    /// Type.
    #[prost(string, tag = "6")]
    pub r#type: String,
    /// Unique items.
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
}

/// `openapi.v2.PathParameterSubSchema` (the fields used here; its numbering differs from the
/// query one after `name`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathParameter {
    /// Required.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// `path`.
    #[prost(string, tag = "2")]
    pub r#in: String,
    /// Description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Name.
    #[prost(string, tag = "4")]
    pub name: String,
    /// Type.
    #[prost(string, tag = "5")]
    pub r#type: String,
    /// Unique items.
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
}

/// `openapi.v2.Responses`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Responses {
    /// Responses by status code.
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
}

/// `openapi.v2.NamedResponseValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedResponseValue {
    /// The status code.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The response.
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

/// `openapi.v2.ResponseValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseValue {
    /// The response.
    #[prost(oneof = "ResponseValueOneof", tags = "1")]
    pub oneof: Option<ResponseValueOneof>,
}

/// The `oneof` of [`ResponseValue`] (references are not used).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ResponseValueOneof {
    /// An inline response.
    #[prost(message, tag = "1")]
    Response(Response),
}

/// `openapi.v2.Response`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// Description.
    #[prost(string, tag = "1")]
    pub description: String,
    /// Body schema.
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
}

/// `openapi.v2.SchemaItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaItem {
    /// The schema.
    #[prost(oneof = "SchemaItemOneof", tags = "1")]
    pub oneof: Option<SchemaItemOneof>,
}

/// The `oneof` of [`SchemaItem`] (file schemas are not used).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SchemaItemOneof {
    /// A schema.
    #[prost(message, tag = "1")]
    Schema(Schema),
}

/// `openapi.v2.Definitions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Definitions {
    /// The named schemas, in document order.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.NamedSchema`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSchema {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Schema.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// `openapi.v2.Properties`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    /// The properties, in document order.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.TypeItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeItem {
    /// Type names.
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// `openapi.v2.ItemsItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsItem {
    /// Item schemas (one for a list).
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

/// `openapi.v2.AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdditionalPropertiesItem {
    /// A schema or a boolean.
    #[prost(oneof = "AdditionalPropertiesOneof", tags = "1, 2")]
    pub oneof: Option<AdditionalPropertiesOneof>,
}

/// The `oneof` of [`AdditionalPropertiesItem`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalPropertiesOneof {
    /// The value schema.
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    /// Allowed or not.
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// `openapi.v2.Schema`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    /// `$ref`.
    #[prost(string, tag = "1")]
    pub _ref: String,
    /// Format.
    #[prost(string, tag = "2")]
    pub format: String,
    /// Title.
    #[prost(string, tag = "3")]
    pub title: String,
    /// Description.
    #[prost(string, tag = "4")]
    pub description: String,
    /// Default value.
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    /// Multiple of.
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    /// Maximum.
    #[prost(double, tag = "7")]
    pub maximum: f64,
    /// Exclusive maximum.
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    /// Minimum.
    #[prost(double, tag = "9")]
    pub minimum: f64,
    /// Exclusive minimum.
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    /// Max length.
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    /// Min length.
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    /// Pattern.
    #[prost(string, tag = "13")]
    pub pattern: String,
    /// Max items.
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    /// Min items.
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    /// Unique items.
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    /// Max properties.
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    /// Min properties.
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    /// Required properties.
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    /// Allowed values.
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    /// Map values.
    #[prost(message, optional, tag = "21")]
    pub additional_properties: Option<AdditionalPropertiesItem>,
    /// Type.
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    /// List items.
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    /// All-of.
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    /// Object properties.
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    /// Read only.
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    /// Example.
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    /// `x-...` keys.
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

fn any(v: &Value) -> Any {
    Any {
        yaml: serde_json::to_string(v).unwrap_or_default(),
    }
}

fn extensions(obj: &Map<String, Value>) -> Vec<NamedAny> {
    obj.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn string(obj: &Map<String, Value>, key: &str) -> String {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strings(obj: &Map<String, Value>, key: &str) -> Vec<String> {
    obj.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn boolean(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn float(obj: &Map<String, Value>, key: &str) -> f64 {
    obj.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn int(obj: &Map<String, Value>, key: &str) -> i64 {
    obj.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn named_schemas(obj: Option<&Value>) -> Vec<NamedSchema> {
    obj.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| NamedSchema {
                    name: k.clone(),
                    value: Some(schema(v)),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Converts a Swagger 2.0 JSON schema.
pub fn schema(v: &Value) -> Schema {
    let Some(o) = v.as_object() else {
        return Schema::default();
    };
    let r#type = match o.get("type") {
        Some(Value::String(t)) => Some(TypeItem {
            value: vec![t.clone()],
        }),
        Some(Value::Array(ts)) => Some(TypeItem {
            value: ts.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
        }),
        _ => None,
    };
    let items = match o.get("items") {
        Some(Value::Array(list)) => Some(ItemsItem {
            schema: list.iter().map(schema).collect(),
        }),
        Some(one @ Value::Object(_)) => Some(ItemsItem {
            schema: vec![schema(one)],
        }),
        _ => None,
    };
    let additional_properties = match o.get("additionalProperties") {
        Some(Value::Bool(b)) => Some(AdditionalPropertiesOneof::Boolean(*b)),
        Some(s @ Value::Object(_)) => Some(AdditionalPropertiesOneof::Schema(Box::new(schema(s)))),
        _ => None,
    }
    .map(|one| AdditionalPropertiesItem { oneof: Some(one) });
    Schema {
        _ref: string(o, "$ref"),
        format: string(o, "format"),
        title: string(o, "title"),
        description: string(o, "description"),
        default: o.get("default").map(any),
        multiple_of: float(o, "multipleOf"),
        maximum: float(o, "maximum"),
        exclusive_maximum: boolean(o, "exclusiveMaximum"),
        minimum: float(o, "minimum"),
        exclusive_minimum: boolean(o, "exclusiveMinimum"),
        max_length: int(o, "maxLength"),
        min_length: int(o, "minLength"),
        pattern: string(o, "pattern"),
        max_items: int(o, "maxItems"),
        min_items: int(o, "minItems"),
        unique_items: boolean(o, "uniqueItems"),
        max_properties: int(o, "maxProperties"),
        min_properties: int(o, "minProperties"),
        required: strings(o, "required"),
        r#enum: o
            .get("enum")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(any).collect())
            .unwrap_or_default(),
        additional_properties,
        r#type,
        items,
        all_of: o
            .get("allOf")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(schema).collect())
            .unwrap_or_default(),
        properties: o.get("properties").map(|p| Properties {
            additional_properties: named_schemas(Some(p)),
        }),
        read_only: boolean(o, "readOnly"),
        example: o.get("example").map(any),
        vendor_extension: extensions(o),
    }
}

fn parameter(v: &Value) -> ParametersItem {
    let empty = Map::new();
    let o = v.as_object().unwrap_or(&empty);
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        return ParametersItem {
            oneof: Some(ParametersItemOneof::JsonReference(JsonReference {
                _ref: r.to_string(),
                description: string(o, "description"),
            })),
        };
    }
    let inner = match o.get("in").and_then(Value::as_str) {
        Some("body") => ParameterOneof::BodyParameter(Box::new(BodyParameter {
            description: string(o, "description"),
            name: string(o, "name"),
            r#in: "body".into(),
            required: boolean(o, "required"),
            schema: o.get("schema").map(schema),
        })),
        Some("path") => ParameterOneof::NonBodyParameter(NonBodyParameter {
            oneof: Some(NonBodyParameterOneof::PathParameterSubSchema(PathParameter {
                required: boolean(o, "required"),
                r#in: "path".into(),
                description: string(o, "description"),
                name: string(o, "name"),
                r#type: string(o, "type"),
                unique_items: boolean(o, "uniqueItems"),
            })),
        }),
        _ => ParameterOneof::NonBodyParameter(NonBodyParameter {
            oneof: Some(NonBodyParameterOneof::QueryParameterSubSchema(SimpleParameter {
                required: boolean(o, "required"),
                r#in: string(o, "in"),
                description: string(o, "description"),
                name: string(o, "name"),
                r#type: string(o, "type"),
                unique_items: boolean(o, "uniqueItems"),
            })),
        }),
    };
    ParametersItem {
        oneof: Some(ParametersItemOneof::Parameter(Parameter { oneof: Some(inner) })),
    }
}

fn parameters(o: &Map<String, Value>) -> Vec<ParametersItem> {
    o.get("parameters")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(parameter).collect())
        .unwrap_or_default()
}

fn operation(v: Option<&Value>) -> Option<Operation> {
    let o = v?.as_object()?;
    let responses = o.get("responses").and_then(Value::as_object).map(|rs| Responses {
        response_code: rs
            .iter()
            .map(|(code, r)| NamedResponseValue {
                name: code.clone(),
                value: Some(ResponseValue {
                    oneof: Some(ResponseValueOneof::Response(Response {
                        description: r
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                        schema: r.get("schema").map(|s| SchemaItem {
                            oneof: Some(SchemaItemOneof::Schema(schema(s))),
                        }),
                    })),
                }),
            })
            .collect(),
    });
    Some(Operation {
        tags: strings(o, "tags"),
        description: string(o, "description"),
        operation_id: string(o, "operationId"),
        produces: strings(o, "produces"),
        consumes: strings(o, "consumes"),
        parameters: parameters(o),
        responses,
        schemes: strings(o, "schemes"),
        vendor_extension: extensions(o),
    })
}

fn path_item(v: &Value) -> PathItem {
    let empty = Map::new();
    let o = v.as_object().unwrap_or(&empty);
    PathItem {
        get: operation(o.get("get")),
        put: operation(o.get("put")),
        post: operation(o.get("post")),
        delete: operation(o.get("delete")),
        patch: operation(o.get("patch")),
        parameters: parameters(o),
        vendor_extension: extensions(o),
    }
}

/// Converts a whole Swagger 2.0 JSON document.
pub fn document(v: &Value) -> Document {
    let empty = Map::new();
    let o = v.as_object().unwrap_or(&empty);
    let info = o.get("info").and_then(Value::as_object).map(|i| Info {
        title: string(i, "title"),
        version: string(i, "version"),
    });
    let paths = o.get("paths").and_then(Value::as_object).map(|ps| Paths {
        vendor_extension: extensions(ps),
        path: ps
            .iter()
            .filter(|(k, _)| k.starts_with('/'))
            .map(|(k, item)| NamedPathItem {
                name: k.clone(),
                value: Some(path_item(item)),
            })
            .collect(),
    });
    Document {
        swagger: string(o, "swagger"),
        info,
        paths,
        definitions: o.get("definitions").map(|d| Definitions {
            additional_properties: named_schemas(Some(d)),
        }),
        vendor_extension: extensions(o),
    }
}
