//! The shared shape of validated string newtypes.

/// Implements, for a validated newtype over `String` whose `FromStr` does the validation:
/// `as_str`, `TryFrom<String>` (so serde can validate through `try_from`), `From<T> for String`,
/// `Display` (the text itself) and `Debug` (`Name(text)`).
///
/// `string_newtype!(text_only Name)` implements only `as_str`, `Display` and `Debug`, for values that
/// are derived from other validated values and never parsed from text.
macro_rules! string_newtype {
    ($name:ident) => {
        $crate::newtype::string_newtype!(text_only $name);

        impl TryFrom<String> for $name {
            type Error = $crate::error::CoreError;

            fn try_from(s: String) -> $crate::error::Result<Self> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
    (text_only $name:ident) => {
        impl $name {
            /// Returns the value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

pub(crate) use string_newtype;
