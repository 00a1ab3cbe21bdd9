//! The diagnosis rules: one function per rule in [`RULES`], each reading the [`Facts`] and returning at most
//! one [`Hint`] with its evidence. Adding a rule is adding a function, a [`Rule`] variant and a line in
//! [`RULES`].

use serde::{Deserialize, Serialize};

use crate::diagnose::facts::{DEAD_UNIT_WINDOW, Facts, HINT_WINDOW, Layer};
use crate::snapshot::{LayerInfo, MetricRow};

/// Vanishing: the first layer's gradient norm at least this many times below the output layer's.
pub const VANISHING_RATIO: f32 = 100.0;
/// Exploding: the first layer's gradient norm this many times above the output layer's…
pub const EXPLODING_GRADIENT_RATIO: f32 = 100.0;
/// …or a layer's pre-activation variance this many times what its init scheme gives for its input.
pub const EXPLODING_VARIANCE_FACTOR: f32 = 100.0;
/// …when that variance is also above this (a standard deviation of 5): weights may grow tenfold from a small
/// init and still feed every activation its useful range; growth alone is no explosion.
pub const EXPLODING_MIN_VARIANCE: f32 = 25.0;
/// Dead ReLU: at least this share of a layer's units dead.
pub const DEAD_SHARE: f32 = 0.5;
/// Saturation: at least this share of a sigmoid / tanh layer's units saturated.
pub const SATURATED_SHARE: f32 = 0.5;
/// The rule of thumb for |ΔW| / |W| per step…
pub const UPDATE_RATIO_TARGET: f32 = 1e-3;
/// …and how many times off it (either way) counts as far.
pub const UPDATE_RATIO_FAR: f32 = 100.0;
/// Output range: at least this share of a regression's training targets out of the output activation's reach.
pub const OUTPUT_RANGE_SHARE: f32 = 0.05;
/// Plateau: the mean loss of the last [`HINT_WINDOW`] steps fell by less than this share against the window
/// before…
pub const PLATEAU_MIN_DROP: f32 = 0.01;
/// …while the training accuracy is still below this (a converged run may rest).
pub const PLATEAU_ACCURACY: f32 = 0.9;

/// The rules, most specific cause first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// ReLU units that never fire any more.
    DeadRelu,
    /// Sigmoid / tanh units stuck in the flat tails.
    Saturation,
    /// The gradient shrinks on its way back to the first layer.
    VanishingGradients,
    /// Activations or gradients grow far beyond their initial scale.
    Exploding,
    /// Steps far too small or too large for the weights.
    UpdateRatio,
    /// The loss stopped falling well before the net is good.
    Plateau,
    /// A regression's targets lie outside what its output activation can produce.
    OutputRange,
}

impl Rule {
    /// The rule's id, as in `convscope train`'s `hints` array.
    pub fn id(self) -> &'static str {
        match self {
            Rule::DeadRelu => "dead-relu",
            Rule::Saturation => "saturation",
            Rule::VanishingGradients => "vanishing-gradients",
            Rule::Exploding => "exploding",
            Rule::UpdateRatio => "update-ratio",
            Rule::Plateau => "plateau",
            Rule::OutputRange => "output-range",
        }
    }
}

/// One diagnosis: which rule, the layer it is about, and a sentence with the evidence and what to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hint {
    /// The rule that fired.
    pub rule: Rule,
    /// The layer it points at, if one.
    pub layer: Option<String>,
    /// The diagnosis in plain words, numbers included.
    pub sentence: String,
}

impl Hint {
    fn about(rule: Rule, layer: &str, sentence: String) -> Hint {
        Hint { rule, layer: Some(layer.to_owned()), sentence }
    }
}

/// Every rule, in the order their hints are listed.
pub const RULES: &[fn(&Facts) -> Option<Hint>] =
    &[output_range, dead_relu, saturation, vanishing_gradients, exploding, update_ratio, plateau];

/// Runs every rule over `rows` (oldest first; only the last few hundred matter) for the net described by
/// `layers` (all layers, as the worker lists them). Returns the hints that fire, most specific cause first.
pub fn diagnose(rows: &[MetricRow], layers: &[LayerInfo]) -> Vec<Hint> {
    let Some(facts) = Facts::new(rows, layers) else { return Vec::new() };
    RULES.iter().filter_map(|rule| rule(&facts)).collect()
}

fn percent(share: f32) -> String {
    format!("{:.0} %", 100.0 * share)
}

/// Dead ReLU: the hidden layer with the largest share of dead units.
fn dead_relu(facts: &Facts) -> Option<Hint> {
    let (index, share) = facts.worst_hidden(|s| s.dead_fraction, DEAD_SHARE)?;
    let name = facts.layers[index].name;
    Some(Hint::about(
        Rule::DeadRelu,
        name,
        format!(
            "{name}: {} of its ReLU units are dead (no output for any example of the last {DEAD_UNIT_WINDOW} batches), so no gradient flows through them — lower the learning rate (now {}), or try leaky ReLU or He init",
            percent(share),
            facts.lr
        ),
    ))
}

/// Saturation: the sigmoid / tanh layer with the largest share of saturated units.
fn saturation(facts: &Facts) -> Option<Hint> {
    let (index, share) = facts.worst_hidden(|s| s.saturated_fraction, SATURATED_SHARE)?;
    let layer = &facts.layers[index];
    let slope = facts.latest().get(index).and_then(|s| s.mean_slope).unwrap_or(f32::NAN);
    let peak = layer.activation.peak_slope().unwrap_or(f32::NAN);
    Some(Hint::about(
        Rule::Saturation,
        layer.name,
        format!(
            "{}: {} of its {} units are saturated (mean f' {slope:.3}, against {peak} at the centre), so their gradients are near zero — turn on batch-norm, use a smaller init (xavier), or try ReLU",
            layer.name,
            percent(share),
            layer.activation
        ),
    ))
}

/// Vanishing gradients: the first layer learns orders of magnitude slower than the output layer.
fn vanishing_gradients(facts: &Facts) -> Option<Hint> {
    let (first_norm, last_norm) = (facts.grad_norm(0), facts.grad_norm(facts.output()));
    if !(last_norm > 0.0 && last_norm >= VANISHING_RATIO * first_norm) {
        return None;
    }
    let (first, output) = (facts.layers[0].name, facts.layers[facts.output()].name);
    let saturating: Vec<(usize, &Layer)> =
        facts.hidden().filter(|(_, l)| l.activation.peak_slope().is_some()).collect();
    let mut evidence = String::new();
    if !saturating.is_empty() {
        let slopes: Vec<f32> = saturating
            .iter()
            .map(|(i, _)| facts.stat_median(*i, |s| s.mean_slope.unwrap_or(f32::NAN)))
            .filter(|s| s.is_finite())
            .collect();
        if let (Some(low), Some(high)) =
            (slopes.iter().copied().reduce(f32::min), slopes.iter().copied().reduce(f32::max))
        {
            evidence = format!(
                "; the backward pass multiplies by f' at each of the {} sigmoid/tanh layers on the way (mean f' {low:.3}–{high:.3}; sigmoid' is at most 0.25)",
                saturating.len()
            );
        }
        if let Some(share) = facts.latest().first().and_then(|s| s.saturated_fraction).filter(|&s| s >= 0.1) {
            evidence.push_str(&format!(", and {} of {first}'s units are saturated", percent(share)));
        }
    }
    Some(Hint::about(
        Rule::VanishingGradients,
        first,
        format!(
            "{first} gradient norm {first_norm:.1e}, {:.0}× below {output} ({last_norm:.1e}){evidence} — try ReLU or tanh, He init, or batch-norm",
            last_norm / first_norm.max(f32::MIN_POSITIVE)
        ),
    ))
}

/// Exploding: gradients growing towards the input, or activations far beyond what the init gives.
fn exploding(facts: &Facts) -> Option<Hint> {
    let (first_norm, last_norm) = (facts.grad_norm(0), facts.grad_norm(facts.output()));
    let (first, output, lr) = (facts.layers[0].name, facts.layers[facts.output()].name, facts.lr);
    if last_norm > 0.0 && first_norm >= EXPLODING_GRADIENT_RATIO * last_norm {
        return Some(Hint::about(
            Rule::Exploding,
            first,
            format!(
                "{first} gradient norm {first_norm:.1e}, {:.0}× above {output} ({last_norm:.1e}): gradients grow on their way back — lower the learning rate (now {lr}), use a smaller init, or turn on batch-norm",
                first_norm / last_norm
            ),
        ));
    }
    let (index, var, expected, growth) = (0..facts.layers.len())
        .filter_map(|i| {
            let var = facts.stat_median(i, |s| s.pre_activation_var);
            let expected = facts.stat_median(i, |s| s.init_pre_activation_var);
            (expected > 0.0 && var.is_finite()).then_some((i, var, expected, var / expected))
        })
        .filter(|&(_, var, _, growth)| growth >= EXPLODING_VARIANCE_FACTOR && var >= EXPLODING_MIN_VARIANCE)
        .max_by(|a, b| a.3.total_cmp(&b.3))?;
    let name = facts.layers[index].name;
    Some(Hint::about(
        Rule::Exploding,
        name,
        format!(
            "{name}: pre-activation variance {var:.3e}, {growth:.0}× what its init gives for the input it gets now ({expected:.3}): its weights have grown and the activations are exploding — lower the learning rate (now {lr}), or turn on batch-norm"
        ),
    ))
}

/// Update ratio: the layer furthest from the rule of thumb.
fn update_ratio(facts: &Facts) -> Option<Hint> {
    let (index, ratio) = (0..facts.layers.len())
        .map(|i| (i, facts.stat_median(i, |s| s.update_ratio)))
        .filter(|(_, ratio)| ratio.is_finite())
        .max_by(|a, b| distance_from_target(a.1).total_cmp(&distance_from_target(b.1)))
        .filter(|&(_, ratio)| distance_from_target(ratio) >= UPDATE_RATIO_FAR)?;
    let (name, lr) = (facts.layers[index].name, facts.lr);
    let accuracy = facts.recent.last().map_or(f32::NAN, |r| r.train_accuracy);
    let advice = if ratio > UPDATE_RATIO_TARGET {
        format!("lower the learning rate (now {lr})")
    } else if units_explain_small_steps(facts) {
        // The dead-relu or saturation hint names the cause; raising the rate would contradict its advice.
        "the dead or saturated units above are why: fix them first".to_owned()
    } else if accuracy >= PLATEAU_ACCURACY {
        // A net this good may take small steps; telling it to speed up would be bad advice.
        return None;
    } else {
        format!("raise the learning rate (now {lr}), or look for dead or saturated units")
    };
    let change = if ratio > 0.0 {
        format!("a typical step (the median Δ the layers table shows) changes the weights by {ratio:.1e} of their size")
    } else {
        "the weights do not change at all".to_owned()
    };
    Some(Hint::about(
        Rule::UpdateRatio,
        name,
        format!("{name}: {change} (|ΔW|/|W|; the rule of thumb is about {UPDATE_RATIO_TARGET:.0e}) — {advice}"),
    ))
}

/// Plateau: the loss has stopped falling while accuracy is still poor.
fn plateau(facts: &Facts) -> Option<Hint> {
    let rows = facts.rows;
    if rows.len() < 2 * HINT_WINDOW {
        return None;
    }
    let mean_loss = |rows: &[MetricRow]| rows.iter().map(|r| r.loss).sum::<f32>() / rows.len().max(1) as f32;
    let before = mean_loss(&rows[rows.len() - 2 * HINT_WINDOW..rows.len() - HINT_WINDOW]);
    let now = mean_loss(facts.recent);
    // A regression rests when its R² is as good as a classifier's accuracy would need to be.
    let last = facts.recent.last();
    let (accuracy, figure) = match last.and_then(|r| r.train_regression) {
        Some(m) => (m.r2, format!("training R² at {:.2}", m.r2)),
        None => {
            let accuracy = last.map_or(f32::NAN, |r| r.train_accuracy);
            (accuracy, format!("training accuracy at {}", percent(accuracy)))
        }
    };
    let stalled = before.is_finite() && now.is_finite() && now > (1.0 - PLATEAU_MIN_DROP) * before;
    (stalled && accuracy < PLATEAU_ACCURACY).then(|| Hint {
        rule: Rule::Plateau,
        layer: None,
        sentence: format!(
            "the loss has not fallen over the last {} steps (from {before:.3} to {now:.3}) with {figure} — see the other hints, or change the learning rate (now {})",
            2 * HINT_WINDOW,
            facts.lr
        ),
    })
}

/// Output range: a regression whose targets the output activation cannot produce (ReLU and negative targets,
/// sigmoid and targets outside 0…1), with the share of outputs already pinned at that edge.
fn output_range(facts: &Facts) -> Option<Hint> {
    let metrics = facts.recent.last()?.train_regression?;
    if metrics.unreachable < OUTPUT_RANGE_SHARE {
        return None;
    }
    let output = facts.layers[facts.output()];
    let activation = output.activation;
    let range = match activation.range() {
        (Some(low), Some(high)) => format!("{low}…{high}"),
        (Some(low), None) => format!("only values ≥ {low}"),
        (None, Some(high)) => format!("only values ≤ {high}"),
        (None, None) => "any value".to_owned(),
    };
    Some(Hint::about(
        Rule::OutputRange,
        output.name,
        format!(
            "{}: {} of the targets (as the net learns them) lie outside what its {activation} output can produce ({range}), and {} of its outputs are pinned at that edge, where {activation} passes no gradient back — use an identity output (--output-activation identity), or an activation whose range holds the targets",
            output.name,
            percent(metrics.unreachable),
            percent(metrics.pinned),
        ),
    ))
}

/// Whether a hidden layer is dead or saturated enough for its own hint: then tiny updates are a symptom.
fn units_explain_small_steps(facts: &Facts) -> bool {
    facts.worst_hidden(|s| s.dead_fraction, DEAD_SHARE).is_some()
        || facts.worst_hidden(|s| s.saturated_fraction, SATURATED_SHARE).is_some()
}

/// How many times `ratio` is off the rule of thumb, either way (∞ for a weight that does not move at all).
fn distance_from_target(ratio: f32) -> f32 {
    if ratio <= 0.0 { f32::INFINITY } else { (ratio / UPDATE_RATIO_TARGET).max(UPDATE_RATIO_TARGET / ratio) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Activation;
    use crate::arch::{Init, LayerKind, LayerSettings, Shape};
    use crate::diagnose::HINT_MIN_STEPS;
    use crate::snapshot::LayerStats;

    fn layer(name: &str, activation: Activation, output: bool, index: usize) -> LayerInfo {
        LayerInfo {
            name: name.into(),
            kind: LayerKind::Dense { units: 4 },
            out_shape: Shape::Flat(4),
            settings: Some(LayerSettings { activation, bias: true, batch_norm: false, init: Init::He }),
            output,
            weighted_index: Some(index),
        }
    }

    fn stats(update_ratio: f32) -> LayerStats {
        LayerStats {
            grad_rms: 0.1,
            weight_rms: 0.1,
            update_ratio,
            mean_slope: Some(0.5),
            dead_fraction: Some(0.0),
            saturated_fraction: None,
            pre_activation_mean: 0.0,
            pre_activation_var: 1.0,
            init_pre_activation_var: 1.0,
            activation_mean: 0.5,
            activation_var: 0.5,
        }
    }

    fn rows(count: usize, grad_norms: [f32; 2], update_ratio: f32) -> Vec<MetricRow> {
        (0..count)
            .map(|i| MetricRow {
                step: i as u64 + 1,
                epoch: 0,
                loss: 2.0 / (1.0 + i as f32 / 10.0),
                train_accuracy: 0.5,
                test_accuracy: 0.5,
                test_step: 0,
                lr: 0.01,
                grad_norms: grad_norms.to_vec(),
                elapsed_secs: 0.0,
                step_secs: 0.0,
                stats: vec![stats(update_ratio); 2],
                train_regression: None,
                test_regression: None,
            })
            .collect()
    }

    #[test]
    fn rules_read_medians_and_need_a_few_steps() {
        let layers = [layer("dense1", Activation::Relu, false, 0), layer("dense2", Activation::Identity, true, 1)];
        assert!(diagnose(&rows(200, [1.0, 1.0], 1e-3), &layers).is_empty(), "a healthy run says nothing");
        assert!(diagnose(&rows(HINT_MIN_STEPS - 1, [1e-6, 1.0], 1e-3), &layers).is_empty(), "too early to tell");
        let hints = diagnose(&rows(30, [1e-6, 1.0], 1e-3), &layers);
        assert_eq!(hints.iter().map(|h| h.rule).collect::<Vec<_>>(), [Rule::VanishingGradients]);
        assert!(hints[0].sentence.starts_with("dense1 gradient norm 1.0e-6, 1000000× below dense2"), "{hints:?}");
        let hints = diagnose(&rows(30, [1.0, 1.0], 1e-7), &layers);
        assert_eq!(hints.iter().map(|h| h.rule).collect::<Vec<_>>(), [Rule::UpdateRatio]);
        assert!(hints[0].sentence.contains("raise the learning rate"), "{hints:?}");
    }

    #[test]
    fn no_two_hints_pull_the_rate_opposite_ways_and_a_trained_net_is_not_told_to_speed_up() {
        let layers = [layer("dense1", Activation::Relu, false, 0), layer("dense2", Activation::Identity, true, 1)];
        // Dead units and tiny updates: dead-relu says lower the rate; update-ratio must not say raise it.
        let mut dead = rows(30, [1.0, 1.0], 1e-7);
        for row in &mut dead {
            row.stats[0].dead_fraction = Some(1.0);
        }
        let hints = diagnose(&dead, &layers);
        assert_eq!(hints.iter().map(|h| h.rule).collect::<Vec<_>>(), [Rule::DeadRelu, Rule::UpdateRatio]);
        assert!(hints[0].sentence.contains("lower the learning rate"), "{hints:?}");
        assert!(!hints[1].sentence.contains("raise"), "{hints:?}");
        // A net at 100 % training accuracy taking small steps is not told to raise its rate.
        let mut trained = rows(30, [1.0, 1.0], 1e-7);
        for row in &mut trained {
            row.train_accuracy = 1.0;
        }
        assert!(diagnose(&trained, &layers).is_empty(), "{:?}", diagnose(&trained, &layers));
    }
}
