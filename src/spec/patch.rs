//! Overrides by field path: `"optimizer.lr" = 0.012` applied to a typed run config.
//!
//! Sweeps vary any field of the base config. An override names a dotted path and holds RON
//! text; `Patch` walks the typed config along the path and parses the text as the type of
//! the field it lands on, so an override is checked exactly like the same value written in
//! the base config. Structs get their `Patch` impl from `spec_struct!`, which also defines
//! the struct, so the list of patchable fields can never drift from the real fields.

use serde::de::DeserializeOwned;

/// Why an override could not be applied. `depth` is the index of the path segment at fault.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchError {
    /// The segment names no field of the value at `path[..depth]`.
    NoSuchField {
        depth: usize,
        expected: &'static [&'static str],
        /// Extra words, e.g. which enum variant is active where the field was looked up.
        note: Option<String>,
    },
    /// The path continues below a value that has no named fields (a number, a list, ...).
    NotAStruct { depth: usize },
    /// The RON text does not parse as the type of the field at the full path.
    BadValue { message: String },
}

/// A value that an override can reach into.
pub trait Patch {
    /// Applies `value` (RON text) at `path[depth..]` below `self`.
    fn patch(&mut self, path: &[&str], depth: usize, value: &str) -> Result<(), PatchError>;
}

/// Replaces a whole value by parsing `value` as its type.
pub fn replace<T: DeserializeOwned>(slot: &mut T, value: &str) -> Result<(), PatchError> {
    match super::ron_options().from_str::<T>(value) {
        Ok(parsed) => {
            *slot = parsed;
            Ok(())
        }
        Err(err) => Err(PatchError::BadValue {
            message: err.code.to_string(),
        }),
    }
}

/// Patch for values without named fields: only the whole value can be replaced.
pub fn patch_leaf<T: DeserializeOwned>(
    slot: &mut T,
    path: &[&str],
    depth: usize,
    value: &str,
) -> Result<(), PatchError> {
    if depth < path.len() {
        return Err(PatchError::NotAStruct { depth });
    }
    replace(slot, value)
}

/// Marks types that are replaced whole (numbers, strings, unit-like enums, lists).
macro_rules! patch_as_leaf {
    ($($ty:ty),* $(,)?) => {
        $(impl $crate::spec::patch::Patch for $ty {
            fn patch(
                &mut self,
                path: &[&str],
                depth: usize,
                value: &str,
            ) -> Result<(), $crate::spec::patch::PatchError> {
                $crate::spec::patch::patch_leaf(self, path, depth, value)
            }
        })*
    };
}
pub(crate) use patch_as_leaf;

patch_as_leaf!(bool, u64, usize, f64, String, (f64, f64));

impl<T: DeserializeOwned> Patch for Option<T> {
    fn patch(&mut self, path: &[&str], depth: usize, value: &str) -> Result<(), PatchError> {
        patch_leaf(self, path, depth, value)
    }
}

impl<T: DeserializeOwned> Patch for Vec<T> {
    fn patch(&mut self, path: &[&str], depth: usize, value: &str) -> Result<(), PatchError> {
        patch_leaf(self, path, depth, value)
    }
}

/// Defines a spec struct (serde, `deny_unknown_fields`) together with its `Patch` impl.
macro_rules! spec_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The field names, in declaration order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
        }

        impl $crate::spec::patch::Patch for $name {
            fn patch(
                &mut self,
                path: &[&str],
                depth: usize,
                value: &str,
            ) -> Result<(), $crate::spec::patch::PatchError> {
                let Some(segment) = path.get(depth) else {
                    return $crate::spec::patch::replace(self, value);
                };
                match *segment {
                    $(stringify!($field) => self.$field.patch(path, depth + 1, value),)*
                    _ => Err($crate::spec::patch::PatchError::NoSuchField {
                        depth,
                        expected: Self::FIELDS,
                        note: None,
                    }),
                }
            }
        }
    };
}
pub(crate) use spec_struct;

#[cfg(test)]
mod tests {
    use super::*;

    spec_struct! {
        /// A test struct.
        pub struct Inner {
            pub lr: f64,
            pub steps: Vec<u64>,
        }
    }

    spec_struct! {
        pub struct Outer {
            pub name: String,
            pub inner: Inner,
        }
    }

    fn sample() -> Outer {
        Outer {
            name: "x".into(),
            inner: Inner {
                lr: 0.1,
                steps: vec![1],
            },
        }
    }

    #[test]
    fn patches_nested_leaf_and_whole_struct() {
        let mut outer = sample();
        outer.patch(&["inner", "lr"], 0, "0.5").unwrap();
        assert_eq!(outer.inner.lr, 0.5);
        outer
            .patch(&["inner"], 0, "(lr: 2.0, steps: [3, 4])")
            .unwrap();
        assert_eq!(outer.inner.steps, vec![3, 4]);
        assert_eq!(outer.inner.lr, 2.0);
    }

    #[test]
    fn unknown_field_reports_depth_and_choices() {
        let err = sample().patch(&["inner", "lrr"], 0, "1.0").unwrap_err();
        assert_eq!(
            err,
            PatchError::NoSuchField {
                depth: 1,
                expected: &["lr", "steps"],
                note: None
            }
        );
    }

    #[test]
    fn path_below_a_leaf_is_rejected() {
        let err = sample().patch(&["name", "x"], 0, "\"y\"").unwrap_err();
        assert_eq!(err, PatchError::NotAStruct { depth: 1 });
    }

    #[test]
    fn wrong_type_is_a_bad_value() {
        let err = sample().patch(&["inner", "lr"], 0, "\"fast\"").unwrap_err();
        assert!(matches!(err, PatchError::BadValue { .. }), "{err:?}");
    }
}
