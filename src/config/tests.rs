//! Unit tests of [`super`] (config).

use super::*;

fn s(v: &str) -> ConfigValue {
    ConfigValue::String(v.to_string())
}
fn n(v: f64) -> ConfigValue {
    ConfigValue::Number(v)
}
fn line(key: &str, values: Vec<ConfigValue>) -> ConfigNode {
    ConfigNode::new(key, values)
}
fn block(key: &str, values: Vec<ConfigValue>, children: Vec<ConfigNode>) -> ConfigNode {
    ConfigNode {
        key: key.to_string(),
        values,
        children,
    }
}
fn err(nodes: Vec<ConfigNode>) -> String {
    Config::from_nodes(&nodes).unwrap_err().to_string()
}

#[test]
fn defaults_report_everything_by_comm() {
    let c = Config::from_nodes(&[]).unwrap();
    assert!(c.rules.is_empty());
    assert_eq!(c.group_by.unwrap().source(), "{comm}");
    assert_eq!(c.max_instances, 1000);
    assert!(c.collect_file_handles && c.collect_io && c.exit_records);
    assert!(c.notifications && !c.meta_data);
}

#[test]
fn every_option() {
    let c = Config::from_nodes(&[
        line("Process", vec![s("sshd")]),
        line("ProcessMatch", vec![s("java-{pid}"), s("java .*-jar")]),
        block(
            "Match",
            vec![s("pg")],
            vec![
                line("Comm", vec![s("^postgres")]),
                line("User", vec![n(70.0)]),
            ],
        ),
        line("GroupBy", vec![s("{user}:{comm}:{pid}")]),
        line("MaxInstances", vec![n(50.0)]),
        line("collectfilehandles", vec![ConfigValue::Boolean(false)]),
        line("CollectIO", vec![s("off")]),
        line("ExitRecords", vec![ConfigValue::Boolean(false)]),
        line("Notifications", vec![ConfigValue::Boolean(false)]),
        line("metadata", vec![s("yes")]),
    ])
    .unwrap();
    assert_eq!(c.rules.len(), 3);
    assert_eq!(c.rules[0].criteria.comm_exact.as_deref(), Some("sshd"));
    assert!(c.rules[1].criteria.cmdline_falls_back_to_comm);
    assert_eq!(c.rules[2].criteria.user, Some(UserSpec::Uid(70)));
    assert!(c.needs_field(Field::User) && c.needs_field(Field::Pid));
    assert!(!c.needs_field(Field::Exe));
    assert!(!c.needs_field(Field::Cgroup) && !c.needs_field(Field::Container));
    assert_eq!(c.max_instances, 50);
    assert!(!c.collect_file_handles && !c.collect_io && !c.exit_records);
    assert!(!c.notifications && c.meta_data);
}

/// A configuration written for collectd's processes plugin keeps its switch's name.
#[test]
fn the_processes_plugin_s_name_for_file_handles_is_accepted() {
    let c = Config::from_nodes(&[line(
        "CollectFileDescriptor",
        vec![ConfigValue::Boolean(false)],
    )])
    .unwrap();
    assert!(!c.collect_file_handles);
}

/// The costly values are off by default, and each is turned on by the processes plugin's name
/// for it (`CollectMemoryDetails` has none there: that plugin always reads them).
#[test]
fn costly_values_are_opt_in_under_the_processes_plugin_s_names() {
    let c = Config::from_nodes(&[]).unwrap();
    assert!(!c.collect_memory_details && !c.collect_context_switches);
    assert!(!c.collect_memory_maps && !c.collect_delay_accounting);
    let on = |name: &str| line(name, vec![ConfigValue::Boolean(true)]);
    let c = Config::from_nodes(&[
        on("CollectMemoryDetails"),
        on("CollectContextSwitch"),
        on("CollectMemoryMaps"),
        on("collectdelayaccounting"),
    ])
    .unwrap();
    assert!(c.collect_memory_details && c.collect_context_switches);
    assert!(c.collect_memory_maps && c.collect_delay_accounting);
    let err = Config::from_nodes(&[line(
        "CollectContextSwitches",
        vec![ConfigValue::Boolean(true)],
    )])
    .unwrap_err();
    assert!(err.to_string().contains("CollectContextSwitch"), "{err}");
    // The processes plugin's per-match block says where the option goes instead.
    let err = Config::from_nodes(&[block(
        "Process",
        vec![s("nginx")],
        vec![on("CollectContextSwitch")],
    )])
    .unwrap_err();
    assert!(err.to_string().contains("top of <Plugin capture>"), "{err}");
}

#[test]
fn cgroup_criterion_and_placeholders() {
    let c = Config::from_nodes(&[
        block(
            "Match",
            vec![s("docker-{container}")],
            vec![line("CGROUP", vec![s(r"/docker[-/][0-9a-f]{64}")])],
        ),
        line("GroupBy", vec![s("{cgroup}:{comm}")]),
    ])
    .unwrap();
    let re = c.rules[0].criteria.cgroup.as_ref().unwrap();
    assert!(re.is_match(&format!("/system.slice/docker-{}.scope", "a".repeat(64))));
    assert!(c.rules[0].criteria.needs_cgroup());
    assert!(c.needs_field(Field::Container) && c.needs_field(Field::Cgroup));
    assert!(c.needs_field(Field::Comm));
}

#[test]
fn network_options() {
    let c = Config::from_nodes(&[]).unwrap();
    assert_eq!(c.network, Some(NetworkConfig::default()));
    assert_eq!(c.network.unwrap().interfaces, ["any"]);
    let c = Config::from_nodes(&[
        line("Interface", vec![s("lo")]),
        line("Interface", vec![s("eth0")]),
        line("BPFFilter", vec![s("tcp or udp")]),
        line("SnapLen", vec![n(200.0)]),
        line("BufferSize", vec![n(1048576.0)]),
        line("Promiscuous", vec![ConfigValue::Boolean(true)]),
        line("MaxFlows", vec![n(4096.0)]),
    ])
    .unwrap();
    let net = c.network.unwrap();
    assert_eq!(net.max_flows, 4096);
    assert_eq!(
        NetworkConfig::default().max_flows,
        crate::net::capture::flows::DEFAULT_MAX_FLOWS
    );
    assert_eq!(net.interfaces, ["lo", "eth0"]);
    assert_eq!(net.bpf_filter.as_deref(), Some("tcp or udp"));
    assert_eq!(
        (net.snaplen, net.buffer_size, net.promiscuous),
        (200, 1 << 20, true)
    );
    let c =
        Config::from_nodes(&[line("CollectNetwork", vec![ConfigValue::Boolean(false)])]).unwrap();
    assert!(c.network.is_none());
}

#[test]
fn group_by_empty_drops_unmatched() {
    let c = Config::from_nodes(&[line("GroupBy", vec![s("")])]).unwrap();
    assert!(c.group_by.is_none());
}

#[test]
fn process_with_slash_gets_a_clean_name() {
    let c = Config::from_nodes(&[line("Process", vec![s("kworker/0:1")])]).unwrap();
    assert_eq!(c.rules[0].name.fixed().as_deref(), Some("kworker_0:1"));
    assert_eq!(
        c.rules[0].criteria.comm_exact.as_deref(),
        Some("kworker/0:1")
    );
}

#[test]
fn suggestions_are_close_names_only() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(closest("maxinstance", &OPTION_NAMES), Some("MaxInstances"));
    assert_eq!(closest("PROCES", &OPTION_NAMES), Some("Process"));
    assert_eq!(closest("Interfaces", &OPTION_NAMES), Some("Interface"));
    assert_eq!(closest("Foo", &OPTION_NAMES), None);
    assert_eq!(
        closest("Notification", &OPTION_NAMES),
        Some("Notifications")
    );
    let message = err(vec![line("Foo", vec![s("x")])]);
    assert!(!message.contains("did you mean"), "{message}");
}

#[test]
fn mistakes_name_option_value_and_what_is_accepted() {
    let cases: Vec<(Vec<ConfigNode>, &[&str])> = vec![
        (
            vec![line("Foo", vec![s("x")])],
            &["`Foo`", "\"x\"", "unknown option", "GroupBy"],
        ),
        (
            vec![line("MaxInstances", vec![s("x")])],
            &["`MaxInstances`", "\"x\"", "integer from 1"],
        ),
        (
            vec![line("MaxInstances", vec![n(0.0)])],
            &["`MaxInstances` 0", "from 1 to 1000000"],
        ),
        (
            vec![line("MaxInstances", vec![n(1.5)])],
            &["1.5", "integer"],
        ),
        (
            vec![line("MaxInstances", vec![n(1e9)])],
            &["1000000000", "integer"],
        ),
        (
            vec![line("ProcessMatch", vec![s("a"), s("(")])],
            &["`ProcessMatch`", "\"(\"", "invalid regular expression"],
        ),
        (
            vec![line("ProcessMatch", vec![s("a")])],
            &["`ProcessMatch`", "two quoted strings"],
        ),
        (
            vec![line("GroupBy", vec![s("{nope}")])],
            &["`GroupBy`", "{nope}", "unknown placeholder", "{comm}"],
        ),
        (
            vec![line("GroupBy", vec![n(3.0)])],
            &["`GroupBy` 3", "one quoted string"],
        ),
        (
            vec![line("Process", vec![s("a"), s("b")])],
            &["`Process`", "exactly one"],
        ),
        (vec![line("Process", vec![])], &["`Process`", "exactly one"]),
        (
            vec![line("CollectIO", vec![n(1.0)])],
            &["`CollectIO` 1", "true or false"],
        ),
        (
            vec![block("Match", vec![s("m")], vec![])],
            &["`Match` \"m\"", "at least one criterion"],
        ),
        (
            vec![block(
                "Match",
                vec![s("m")],
                vec![line("Bogus", vec![s("x")])],
            )],
            &["`Bogus`", "inside <Match>"],
        ),
        (
            vec![block(
                "Match",
                vec![s("m")],
                vec![line("Exe", vec![s("[")])],
            )],
            &["`Exe` \"[\"", "invalid regular expression"],
        ),
        (
            vec![block(
                "Match",
                vec![s("m")],
                vec![line("User", vec![ConfigValue::Boolean(true)])],
            )],
            &["`User` true", "user name or a numeric uid"],
        ),
        (
            vec![block(
                "Match",
                vec![s("m")],
                vec![line("Cgroup", vec![s("docker-(")])],
            )],
            &["`Cgroup` \"docker-(\"", "invalid regular expression"],
        ),
        (
            vec![block(
                "Match",
                vec![s("m")],
                vec![
                    line("Cgroup", vec![s("^/system.slice/")]),
                    line("Comm", vec![s("x")]),
                    line("cgroup", vec![s("docker")]),
                ],
            )],
            &["`cgroup` \"docker\"", "given twice in the same <Match>"],
        ),
        (
            vec![block(
                "Match",
                vec![s("m")],
                vec![line("Cgroup", vec![n(1.0)])],
            )],
            &["`Cgroup` 1", "one quoted string"],
        ),
        (
            vec![block("Match", vec![s("m")], vec![])],
            &["at least one criterion", "Cgroup"],
        ),
        (
            vec![block(
                "Match",
                vec![s("m")],
                vec![line("Container", vec![s("x")])],
            )],
            &["`Container`", "inside <Match>", "Cgroup"],
        ),
        (
            vec![line("GroupBy", vec![s("{containers}")])],
            &["`GroupBy`", "{containers}", "{container}", "{cgroup}"],
        ),
        (
            vec![line("ProcessMatch", vec![s("a/b"), s("x")])],
            &["\"a/b\"", "`/`"],
        ),
        (
            vec![line("ProcessMatch", vec![s("self"), s("x")])],
            &["reserved"],
        ),
        (
            vec![line("ProcessMatch", vec![s(&"x".repeat(64)), s("x")])],
            &["at most 63 bytes"],
        ),
        (
            vec![
                line("ProcessMatch", vec![s("w"), s("a")]),
                line("Process", vec![s("w")]),
            ],
            &["`Process` \"w\"", "earlier `ProcessMatch` rule"],
        ),
        (
            vec![
                line("GroupBy", vec![s("x")]),
                line("Process", vec![s("a")]),
                line("Process", vec![s("b")]),
                line("MaxInstances", vec![n(1.0)]),
            ],
            &["MaxInstances", "2 rules"],
        ),
        (
            vec![block("GroupBy", vec![s("x")], vec![line("a", vec![])])],
            &["`GroupBy`", "not a block"],
        ),
        (
            vec![line("SnapLen", vec![n(40.0)])],
            &["`SnapLen` 40", "from 96 to 65535"],
        ),
        (
            vec![line("BufferSize", vec![n(10.0)])],
            &["`BufferSize` 10", "from 65536"],
        ),
        (
            vec![line("MaxFlows", vec![n(100.0)])],
            &["`MaxFlows` 100", "from 1024 to 16777216"],
        ),
        (
            vec![line("Interface", vec![s("a/b")])],
            &["`Interface` \"a/b\"", "interface name"],
        ),
        (
            vec![
                line("Interface", vec![s("lo")]),
                line("Interface", vec![s("lo")]),
            ],
            &["given twice"],
        ),
        (
            vec![line("CollectNetwork", vec![s("maybe")])],
            &["`CollectNetwork`", "true or false"],
        ),
        (
            vec![line("Notifications", vec![s("loud")])],
            &["`Notifications` \"loud\"", "true or false"],
        ),
        (
            vec![line("MetaData", vec![n(2.0)])],
            &["`MetaData` 2", "true or false"],
        ),
        (
            vec![line("Notification", vec![ConfigValue::Boolean(true)])],
            &[
                "`Notification` true",
                "unknown option",
                "Notifications",
                "MetaData",
            ],
        ),
        (
            vec![line("MaxInstance", vec![n(5.0)])],
            &["`MaxInstance` 5", "did you mean `MaxInstances`?"],
        ),
        (
            vec![line("BPFFiltre", vec![s("tcp")])],
            &["`BPFFiltre`", "did you mean `BPFFilter`?"],
        ),
        (
            vec![block(
                "Match",
                vec![s("m")],
                vec![line("Cmdlin", vec![s("x")])],
            )],
            &["`Cmdlin`", "inside <Match>", "did you mean `Cmdline`?"],
        ),
        (
            vec![line("Comm", vec![s("^x")])],
            &["`Comm` \"^x\"", "criterion of a <Match"],
        ),
        (
            vec![block(
                "Matc",
                vec![s("m")],
                vec![line("Comm", vec![s("x")])],
            )],
            &["`Matc` \"m\"", "did you mean `Match`?"],
        ),
        (
            vec![line("GroupBy", vec![s("  ")])],
            &["`GroupBy` \"  \"", "not blank"],
        ),
    ];
    for (nodes, needles) in cases {
        let message = err(nodes);
        for needle in needles {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    }
}

mod properties {
    use super::*;
    use crate::sampler::grouping::{self, tests::Fixed};
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = ConfigValue> {
        prop_oneof![
            prop_oneof![
                "\\PC{0,16}",
                "\\{(comm|exe|user|uid|pid|cgroup|container)\\}[:a-z/]{0,4}",
                "(true|false|on|off|[0-9]{1,7})",
            ]
            .prop_map(ConfigValue::String),
            prop_oneof![any::<f64>(), (-5i32..2_000_000).prop_map(f64::from)]
                .prop_map(ConfigValue::Number),
            any::<bool>().prop_map(ConfigValue::Boolean),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(
                OPTION_NAMES.iter().chain(&MATCH_OPTION_NAMES).copied().collect::<Vec<_>>()
            )
            .prop_map(str::to_string),
            1 => "[a-zA-Z]{0,12}",
        ]
    }

    /// Trees of options as collectd hands them over: keys, typed values, blocks.
    fn nodes() -> impl Strategy<Value = Vec<ConfigNode>> {
        let leaf =
            (key(), prop::collection::vec(value(), 0..3)).prop_map(|(k, v)| ConfigNode::new(&k, v));
        let tree = leaf.prop_recursive(2, 16, 4, |inner| {
            (
                key(),
                prop::collection::vec(value(), 0..3),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(k, v, children)| ConfigNode {
                    children,
                    ..ConfigNode::new(&k, v)
                })
        });
        prop::collection::vec(tree, 0..6)
    }

    fn written(nodes: &[ConfigNode], key: &str) -> bool {
        nodes
            .iter()
            .any(|n| n.key.eq_ignore_ascii_case(key) || written(&n.children, key))
    }

    proptest! {
        /// Any tree: no panic; a refusal names an option as written; an accepted
        /// configuration names every process with a clean name.
        #[test]
        fn any_tree_validates_or_names_its_option(nodes in nodes(), comm in "\\PC{0,20}", pid in any::<u32>()) {
            match Config::from_nodes(&nodes) {
                Err(e) => {
                    prop_assert!(written(&nodes, &e.option), "{:?}", e);
                    prop_assert!(!e.problem.is_empty());
                }
                Ok(config) => {
                    let mut facts = Fixed { pid, comm, ..Fixed::default() };
                    if let Some(a) = grouping::assign(&config, &mut facts) {
                        prop_assert!(crate::names::is_clean(&a.name), "{:?}", a);
                    }
                }
            }
        }

        /// `Process "comm"` names its rule after the command, sanitized, or is refused (a
        /// reserved name); `MaxInstances n` is taken in 1 ... 1000000 and refused outside.
        #[test]
        fn options_come_back(comm in "\\PC{1,20}|[a-z/\n]{1,80}", max in -10i64..2_000_000) {
            let nodes = vec![
                line("Process", vec![s(&comm)]),
                line("MaxInstances", vec![n(max as f64)]),
            ];
            match Config::from_nodes(&nodes) {
                Ok(config) => {
                    prop_assert!((1..=MAX_INSTANCES_LIMIT as i64).contains(&max));
                    prop_assert_eq!(config.max_instances as i64, max);
                    prop_assert_eq!(config.rules[0].name.fixed(), Some(names::sanitize(&comm)));
                }
                Err(e) => prop_assert!(
                    e.option == "MaxInstances" && !(1..=MAX_INSTANCES_LIMIT as i64).contains(&max)
                        || e.option == "Process",
                    "{:?}", e
                ),
            }
        }
    }
}
