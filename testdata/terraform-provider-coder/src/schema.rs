//! Schemas of resources and data sources, their protocol form, and the
//! schema-driven value walks that planning and reading share: filling
//! defaults, marking computed attributes unknown, and shaping stored state
//! to exactly the attributes of the schema.

use rmpv::Value;

use crate::proto::tfplugin6::schema;
use crate::value;

/// An attribute's type (only those the coder provider uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    String,
    Number,
    Bool,
    MapOfString,
    ListOfString,
}

impl Ty {
    /// The cty JSON type description that the protocol carries.
    fn json(self) -> &'static [u8] {
        match self {
            Ty::String => br#""string""#,
            Ty::Number => br#""number""#,
            Ty::Bool => br#""bool""#,
            Ty::MapOfString => br#"["map","string"]"#,
            Ty::ListOfString => br#"["list","string"]"#,
        }
    }
}

/// Whether the configuration must, may or may not set an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Required,
    Optional,
    /// Optional, and filled by the provider (a default) when unset.
    OptionalComputed,
    Computed,
}

/// One attribute of a block.
#[derive(Clone, Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Ty,
    pub mode: Mode,
    pub sensitive: bool,
    /// The value planned for an unset optional+computed attribute.
    pub default: Option<Value>,
}

impl Attr {
    fn new(name: &'static str, ty: Ty, mode: Mode) -> Self {
        Attr { name, ty, mode, sensitive: false, default: None }
    }
    pub fn required(name: &'static str, ty: Ty) -> Self {
        Attr::new(name, ty, Mode::Required)
    }
    pub fn optional(name: &'static str, ty: Ty) -> Self {
        Attr::new(name, ty, Mode::Optional)
    }
    pub fn computed(name: &'static str, ty: Ty) -> Self {
        Attr::new(name, ty, Mode::Computed)
    }
    /// Optional, with `default` planned when the configuration leaves it unset.
    pub fn with_default(name: &'static str, ty: Ty, default: impl Into<Value>) -> Self {
        Attr { default: Some(default.into()), ..Attr::new(name, ty, Mode::OptionalComputed) }
    }
    pub fn sensitive(self) -> Self {
        Attr { sensitive: true, ..self }
    }
    pub fn is_computed(&self) -> bool {
        matches!(self.mode, Mode::Computed | Mode::OptionalComputed)
    }
}

/// A nested block type, always list-nested as in the coder provider.
#[derive(Clone, Debug)]
pub struct NestedBlock {
    pub name: &'static str,
    /// 0 for no limit.
    pub max_items: i64,
    pub block: Block,
}

/// A block: attributes and nested block types.
#[derive(Clone, Debug, Default)]
pub struct Block {
    pub attrs: Vec<Attr>,
    pub blocks: Vec<NestedBlock>,
}

impl Block {
    pub fn new(attrs: Vec<Attr>) -> Self {
        Block { attrs, blocks: Vec::new() }
    }

    /// Adds a list-nested block type (`max_items` 0 for no limit).
    pub fn with_block(mut self, name: &'static str, max_items: i64, block: Block) -> Self {
        self.blocks.push(NestedBlock { name, max_items, block });
        self
    }

    /// The protocol form of this block as a whole schema (version 0).
    pub fn to_schema(&self) -> crate::proto::tfplugin6::Schema {
        crate::proto::tfplugin6::Schema { version: 0, block: Some(self.to_proto()) }
    }

    fn to_proto(&self) -> schema::Block {
        schema::Block {
            version: 0,
            attributes: self
                .attrs
                .iter()
                .map(|a| schema::Attribute {
                    name: a.name.to_owned(),
                    r#type: a.ty.json().to_vec(),
                    required: a.mode == Mode::Required,
                    optional: matches!(a.mode, Mode::Optional | Mode::OptionalComputed),
                    computed: a.is_computed(),
                    sensitive: a.sensitive,
                    ..Default::default()
                })
                .collect(),
            block_types: self
                .blocks
                .iter()
                .map(|b| schema::NestedBlock {
                    type_name: b.name.to_owned(),
                    block: Some(b.block.to_proto()),
                    nesting: schema::nested_block::NestingMode::List as i32,
                    min_items: 0,
                    max_items: b.max_items,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Plans the computed attributes of `obj` (an object of this block, or
    /// null): null optional+computed attributes get their defaults, and null
    /// computed-only ones become unknown when `creating` (on update they
    /// keep the prior value, which Terraform's proposed state carries).
    pub fn plan_computed(&self, obj: &mut Value, creating: bool) {
        if obj.is_nil() || value::is_unknown(obj) {
            return;
        }
        for attr in &self.attrs {
            if !attr.is_computed() || !value::is_null_attr(obj, attr.name) {
                continue;
            }
            if let Some(default) = &attr.default {
                value::set(obj, attr.name, default.clone());
            } else if creating {
                value::set(obj, attr.name, value::unknown());
            }
        }
        for nested in &self.blocks {
            if let Some(Value::Array(items)) = map_get_mut(obj, nested.name) {
                for item in items {
                    nested.block.plan_computed(item, creating);
                }
            }
        }
    }

    /// Fills null optional+computed attributes with their defaults, in this
    /// block and nested ones (for data sources, read with a known config).
    pub fn fill_defaults(&self, obj: &mut Value) {
        self.plan_computed(obj, false);
    }

    /// Shapes `v` (e.g. decoded from stored JSON state) to exactly the
    /// attributes and blocks of this block: absent ones become null (blocks
    /// an empty list), ones the schema lacks are dropped.
    pub fn shape(&self, v: &Value) -> Value {
        if v.is_nil() {
            return Value::Nil;
        }
        let mut entries = Vec::with_capacity(self.attrs.len() + self.blocks.len());
        for attr in &self.attrs {
            let got = value::get(v, attr.name).cloned().unwrap_or(Value::Nil);
            entries.push((Value::from(attr.name), shape_attr(attr.ty, got)));
        }
        for nested in &self.blocks {
            let items = match value::get(v, nested.name) {
                Some(Value::Array(items)) => items.iter().map(|i| nested.block.shape(i)).collect(),
                _ => Vec::new(),
            };
            entries.push((Value::from(nested.name), Value::Array(items)));
        }
        Value::Map(entries)
    }

    /// The names of all attributes and nested blocks, for a null object.
    pub fn null_object(&self) -> Value {
        self.shape(&Value::Map(Vec::new()))
    }
}

/// Converts a stored attribute value to its type where JSON lost it (a
/// number stored as a string stays as is: cty accepts that).
fn shape_attr(ty: Ty, v: Value) -> Value {
    match (ty, &v) {
        (Ty::String, Value::Integer(i)) => Value::from(i.to_string()),
        (Ty::String, Value::Boolean(b)) => Value::from(b.to_string()),
        _ => v,
    }
}

/// The attribute `name` of object `obj`, mutably.
pub fn map_get_mut<'a>(obj: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    match obj {
        Value::Map(entries) => {
            entries.iter_mut().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Block {
        Block::new(vec![
            Attr::required("os", Ty::String),
            Attr::with_default("auth", Ty::String, "token"),
            Attr::computed("id", Ty::String),
        ])
        .with_block("item", 0, Block::new(vec![Attr::computed("is_null", Ty::Bool)]))
    }

    #[test]
    fn plan_fills_defaults_and_unknowns() {
        let mut obj = block().null_object();
        value::set(&mut obj, "os", value::string("linux"));
        value::set(&mut obj, "item", Value::Array(vec![block().blocks[0].block.null_object()]));
        block().plan_computed(&mut obj, true);
        assert_eq!(value::get_str(&obj, "auth"), Some("token"));
        assert!(value::get(&obj, "id").is_some_and(value::is_unknown));
        let item = match value::get(&obj, "item") {
            Some(Value::Array(items)) => items[0].clone(),
            other => panic!("item: {other:?}"),
        };
        assert!(value::get(&item, "is_null").is_some_and(value::is_unknown));
    }

    #[test]
    fn shape_adds_missing_and_drops_unknown_attributes() {
        let stored = Value::Map(vec![
            (Value::from("os"), value::string("linux")),
            (Value::from("gone"), Value::Boolean(true)),
        ]);
        let shaped = block().shape(&stored);
        assert_eq!(value::get_str(&shaped, "os"), Some("linux"));
        assert!(value::get(&shaped, "gone").is_none());
        assert_eq!(value::get(&shaped, "item"), Some(&Value::Array(Vec::new())));
        assert!(value::is_null_attr(&shaped, "id"));
    }
}
