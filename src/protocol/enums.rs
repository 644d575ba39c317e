//! The domain's wire enums as proto enums: each domain value has its own
//! proto value, and `*_UNSPECIFIED` (0, what an unset field reads as) or a
//! value this side does not know is a [`BadMessage`] naming the field.

use super::{proto, BadMessage};
use crate::domain::{JobType, LogLevel, LogSource, TimingStage, Transition};

/// A domain enum carried as a proto enum (an `i32` in prost's messages).
pub trait Wire: Sized + Copy {
    /// What the enum is called in error messages.
    const KIND: &'static str;
    /// The proto value.
    fn to_wire(self) -> i32;
    /// The domain value of a proto value.
    fn from_wire(value: i32) -> Result<Self, BadMessage>;
    /// Every domain value, for tests that must cover them all.
    #[cfg(test)]
    fn every() -> Vec<Self>;
}

macro_rules! wire {
    ($domain:ident, $proto:ident, $kind:literal { $($variant:ident),+ $(,)? }) => {
        impl Wire for $domain {
            const KIND: &'static str = $kind;

            fn to_wire(self) -> i32 {
                match self {
                    $($domain::$variant => proto::$proto::$variant as i32),+
                }
            }

            fn from_wire(value: i32) -> Result<Self, BadMessage> {
                match proto::$proto::try_from(value) {
                    $(Ok(proto::$proto::$variant) => Ok($domain::$variant),)+
                    _ => Err(BadMessage(format!(
                        "{} {value} is unset or unknown (is the peer of another protocol version?)",
                        $kind
                    ))),
                }
            }

            #[cfg(test)]
            fn every() -> Vec<Self> {
                vec![$($domain::$variant),+]
            }
        }
    };
}

wire!(Transition, Transition, "transition" { Start, Stop, Delete });
wire!(JobType, JobType, "job type" {
    WorkspaceBuild,
    TemplateVersionImport,
    TemplateVersionDryRun,
});
wire!(LogLevel, LogLevel, "log level" { Trace, Debug, Info, Warn, Error });
wire!(LogSource, LogSource, "log source" { ProvisionerDaemon, Provisioner });
wire!(TimingStage, TimingStage, "timing stage" { Init, Plan, Graph, Apply });

#[cfg(test)]
mod tests {
    use super::*;

    /// Every domain value survives the wire, and every proto value but
    /// `UNSPECIFIED` is some domain value (a value added to one side only
    /// fails here).
    fn round_trips<T: Wire + PartialEq + std::fmt::Debug>(proto_values: usize) {
        let every = T::every();
        for v in &every {
            assert_eq!(T::from_wire(v.to_wire()).ok(), Some(*v), "{} {v:?}", T::KIND);
            assert_ne!(v.to_wire(), 0, "{v:?} must not be the unset value");
        }
        assert_eq!(every.len() + 1, proto_values, "{}: one proto value per domain value", T::KIND);
        let unset = T::from_wire(0).expect_err("unspecified");
        assert!(unset.0.contains(T::KIND), "{unset}");
        assert!(T::from_wire(99).is_err());
    }

    fn proto_values(valid: impl Fn(i32) -> bool) -> usize {
        (0..64).filter(|v| valid(*v)).count()
    }

    #[test]
    fn every_wire_enum_value_round_trips() {
        round_trips::<Transition>(proto_values(|v| proto::Transition::try_from(v).is_ok()));
        round_trips::<JobType>(proto_values(|v| proto::JobType::try_from(v).is_ok()));
        round_trips::<LogLevel>(proto_values(|v| proto::LogLevel::try_from(v).is_ok()));
        round_trips::<LogSource>(proto_values(|v| proto::LogSource::try_from(v).is_ok()));
        round_trips::<TimingStage>(proto_values(|v| proto::TimingStage::try_from(v).is_ok()));
    }
}
