//! A zone failing is not broken instances: when every instance of one Availability Zone is unhealthy (and the
//! zone has at least two) while other zones still serve, replacing them in the same zone does not help and
//! removes capacity. Pure: read from the snapshot's EC2 facts.

use std::collections::BTreeMap;

use super::port::{HealthState, Snapshot};
use super::refusal::Refusal;

/// The fewest instances a zone needs before all of them failing counts as the zone failing: one instance down
/// is just one instance.
const MIN_ZONE_SIZE: usize = 2;

/// How one zone's instances stand.
#[derive(Debug, Default, Clone, Copy)]
struct Zone {
    instances: usize,
    in_service: usize,
    /// Failing health checks (OutOfService): what replacing would act on.
    out_of_service: usize,
}

/// The zonal-failure refusal, when every instance of one zone of at least two is OutOfService while instances in
/// other zones are InService. A zone with an instance in any other state (registering, draining, not in use by
/// the balancer, unknown) is not judged: that is not a zone failing its health checks. Instances whose zone EC2
/// does not say are left out.
pub fn zonal_refusal(snapshot: &Snapshot) -> Option<Refusal> {
    let mut zones: BTreeMap<&str, Zone> = BTreeMap::new();
    for instance in &snapshot.instances {
        let Some(zone) = instance.ec2.as_ref().and_then(|ec2| ec2.zone.as_deref()) else {
            continue;
        };
        let counts = zones.entry(zone).or_default();
        counts.instances += 1;
        match instance.health.state {
            HealthState::InService => counts.in_service += 1,
            HealthState::OutOfService => counts.out_of_service += 1,
            _ => {}
        }
    }
    let (zone, failing) = zones.iter().find(|(_, counts)| {
        counts.instances >= MIN_ZONE_SIZE && counts.out_of_service == counts.instances
    })?;
    let unhealthy = failing.out_of_service;
    let healthy_elsewhere: usize = zones
        .iter()
        .filter(|(other, _)| *other != zone)
        .map(|(_, counts)| counts.in_service)
        .sum();
    (healthy_elsewhere > 0).then(|| Refusal::ZonalFailure {
        zone: (*zone).to_owned(),
        unhealthy,
        healthy_elsewhere,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::health;
    use crate::engine::port::{Ec2Facts, InstanceView};

    fn instance(id: &str, zone: Option<&str>, in_service: bool) -> InstanceView {
        InstanceView {
            instance_id: id.into(),
            health: if in_service {
                health::classic("InService", None, None)
            } else {
                health::classic("OutOfService", Some("Instance"), None)
            },
            ec2: Some(Ec2Facts {
                state: if in_service { "running" } else { "stopped" }.into(),
                launch_time: None,
                tags: vec![],
                zone: zone.map(str::to_owned),
                image_id: None,
            }),
            auto_scaling_group: None,
        }
    }

    fn snapshot(instances: Vec<InstanceView>) -> Snapshot {
        Snapshot {
            target: "web".into(),
            instances,
        }
    }

    #[test]
    fn a_whole_zone_down_beside_a_healthy_one_is_refused() {
        let seen = snapshot(vec![
            instance("i-a1", Some("us-east-1a"), false),
            instance("i-a2", Some("us-east-1a"), false),
            instance("i-b1", Some("us-east-1b"), true),
            instance("i-b2", Some("us-east-1b"), true),
            instance("i-b3", Some("us-east-1b"), true),
        ]);
        assert_eq!(
            zonal_refusal(&seen),
            Some(Refusal::ZonalFailure {
                zone: "us-east-1a".into(),
                unhealthy: 2,
                healthy_elsewhere: 3
            })
        );
    }

    #[test]
    fn part_of_a_zone_a_zone_of_one_every_zone_or_no_zones_are_not_a_zonal_failure() {
        let part = snapshot(vec![
            instance("i-a1", Some("us-east-1a"), false),
            instance("i-a2", Some("us-east-1a"), true),
            instance("i-b1", Some("us-east-1b"), true),
        ]);
        assert_eq!(zonal_refusal(&part), None);
        let single = snapshot(vec![
            instance("i-a1", Some("us-east-1a"), false),
            instance("i-b1", Some("us-east-1b"), true),
        ]);
        assert_eq!(zonal_refusal(&single), None);
        let everything = snapshot(vec![
            instance("i-a1", Some("us-east-1a"), false),
            instance("i-a2", Some("us-east-1a"), false),
            instance("i-b1", Some("us-east-1b"), false),
        ]);
        assert_eq!(zonal_refusal(&everything), None);
        let unknown = snapshot(vec![
            instance("i-1", None, false),
            instance("i-2", None, false),
            instance("i-3", None, true),
        ]);
        assert_eq!(zonal_refusal(&unknown), None);
        // A zone the balancer does not use (its instances "not in use") is not a zone failing.
        let mut unused = vec![
            instance("i-a1", Some("us-east-1a"), false),
            instance("i-a2", Some("us-east-1a"), false),
            instance("i-b1", Some("us-east-1b"), true),
        ];
        for view in &mut unused[..2] {
            view.health = health::target_group("unused", Some("Target.NotInUse"), None);
        }
        assert_eq!(zonal_refusal(&snapshot(unused)), None);
    }
}
