
/// The prefilter's needles for the built-in rule: on raw CloudTrail only a value the mapping copies
/// verbatim can be searched for (`data_stream.dataset` is added by the mapping, `event.outcome`
/// computed), so the needle is the provider, as the hand-written prefilter chose it.
#[test]
fn the_lambda_rule_needs_its_provider_in_the_text() {
    let rule = load(&copied_rules().join("execution_lambda_function_invoked_by_unusual_principal.toml"))
        .unwrap_or_else(|error| panic!("{error}"));
    let requirement = rule.requirement();
    let raw = requirement
        .as_ref()
        .and_then(|r| r.any_of(&|needle| cloudtrail::copies_verbatim(&needle.field)));
    let texts = |needles: Option<Vec<kql::Needle>>| {
        needles
            .unwrap_or_default()
            .into_iter()
            .map(|needle| (needle.field, needle.text))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(raw),
        [("event.provider".to_owned(), "lambda.amazonaws.com".to_owned())]
    );
    let ecs = requirement.as_ref().and_then(|r| r.any_of(&|_| true));
    assert_eq!(
        texts(ecs),
        [("event.provider".to_owned(), "lambda.amazonaws.com".to_owned())]
    );
}
