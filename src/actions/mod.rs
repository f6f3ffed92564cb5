//! The action kinds reflex ships: each one file, registered by one line in `builtin`. A kind implements the
//! engine's `Action` port (its calls and its declared effect); every gate, the record, the check, the metrics
//! and the UI come from the engine. A kind may name SDK types, as `aws/` does: it reaches AWS through the
//! target's fleet, or through the SDK clients behind it (`crate::aws::clients_of`).

pub mod isolate;
pub mod reboot;
pub mod replace;

use crate::engine::action::Kinds;

/// Every built-in action kind.
pub fn builtin() -> Kinds {
    Kinds::default()
        .with(replace::Replace)
        .with(reboot::Reboot)
        .with(isolate::Isolate)
}

#[cfg(test)]
mod tests {
    use crate::engine::action::LadderError;

    fn ladder(steps: &[&str]) -> Result<Vec<&'static str>, LadderError> {
        let steps: Vec<String> = steps.iter().map(|step| (*step).to_owned()).collect();
        let kinds = super::builtin().ladder(&steps)?;
        Ok(kinds.iter().map(|kind| kind.name()).collect())
    }

    #[test]
    fn only_the_last_step_of_a_ladder_takes_the_instance_out_of_service() {
        for fine in [
            &["replace"][..],
            &["reboot"],
            &["isolate"],
            &["reboot", "replace"],
            &["reboot", "isolate"],
        ] {
            assert_eq!(ladder(fine).unwrap(), fine);
        }
        for (wrong, step) in [
            (&["replace", "reboot"][..], "replace"),
            (&["isolate", "reboot"], "isolate"),
            (&["isolate", "replace"], "isolate"),
        ] {
            let err = ladder(wrong).unwrap_err();
            assert!(
                matches!(&err, LadderError::RemovesBeforeLast { step: s, .. } if s == step),
                "{err}"
            );
        }
        let err = ladder(&["pray"]).unwrap_err().to_string();
        assert!(
            err.contains("\"pray\"") && err.contains("isolate, reboot, replace"),
            "{err}"
        );
    }

    #[test]
    fn every_kind_s_iam_actions_are_granted_by_both_templates() {
        let templates = [
            include_str!("../../deploy/cloudformation/reflex.yaml"),
            include_str!("../../deploy/cloudformation/member-role.yaml"),
        ];
        for kind in super::builtin().all() {
            for action in kind.iam_actions() {
                for template in templates {
                    assert!(
                        template.contains(&format!(" {action}\n")),
                        "{} needs {action}",
                        kind.name()
                    );
                }
            }
        }
    }
}
