//! Presets: ready-made experiments, each reproducing one question learners ask about activations, on the
//! embedded data in under a minute, with the explanation shown beside it and the flag that runs the other arm.

use crate::arch::{Activation, Init, OutputKind};
use crate::config::{Setting, TrainConfig};
use crate::task::{Target, Task};

/// The one change between a preset's run and its comparison arm. The window makes it live on the running net
/// (the weights stay), `convscope train` takes it as [`Switch::flags`] from the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Switch {
    /// Every hidden layer to this activation.
    Activation(Activation),
    /// Batch-norm on in every hidden layer.
    BatchNorm,
    /// This learning rate.
    LearningRate(f64),
    /// Every layer's bias on.
    Bias,
    /// This output layer and loss.
    Output(OutputKind),
    /// This activation on a regression head's output.
    OutputActivation(Activation),
}

impl Switch {
    /// The `convscope train` flags for the other arm, e.g. `--activation relu`.
    pub fn flags(self) -> String {
        match self {
            Switch::Activation(activation) => format!("--activation {activation}"),
            Switch::BatchNorm => "--batch-norm".to_owned(),
            Switch::LearningRate(lr) => format!("--lr {lr}"),
            Switch::Bias => "--bias".to_owned(),
            Switch::Output(kind) => format!("--output {}", kind.name()),
            Switch::OutputActivation(activation) => format!("--output-activation {activation}"),
        }
    }

    /// The change in words, for the window's button.
    pub fn describe(self) -> String {
        match self {
            Switch::Activation(activation) => format!("every hidden layer to {activation}"),
            Switch::BatchNorm => "batch-norm on in every hidden layer".to_owned(),
            Switch::LearningRate(lr) => format!("learning rate {lr}"),
            Switch::Bias => "every bias on".to_owned(),
            Switch::Output(kind) => format!("{} output", kind.name()),
            Switch::OutputActivation(activation) => format!("{activation} on the output"),
        }
    }

    /// The live settings that make it on a net with `weighted` layers with weights (the last is the output).
    pub fn settings(self, weighted: usize) -> Vec<Setting> {
        let hidden = 0..weighted.saturating_sub(1);
        match self {
            Switch::Activation(activation) => hidden.map(|layer| Setting::Activation { layer, activation }).collect(),
            Switch::BatchNorm => hidden.map(|layer| Setting::BatchNorm { layer, enabled: true }).collect(),
            Switch::LearningRate(lr) => vec![Setting::LearningRate(lr)],
            Switch::Bias => (0..weighted).map(|layer| Setting::Bias { layer, enabled: true }).collect(),
            Switch::Output(kind) => vec![Setting::Output(kind)],
            Switch::OutputActivation(activation) => {
                vec![Setting::Activation { layer: weighted.saturating_sub(1), activation }]
            }
        }
    }
}

/// One experiment.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The name for `--preset` and the window's menu.
    pub name: &'static str,
    /// The question it answers.
    pub question: &'static str,
    /// What to watch, and why it happens: one paragraph.
    pub explanation: &'static str,
    /// The change that gives the comparison arm.
    pub other_arm: Switch,
    /// Steps that show the effect.
    pub steps: u64,
    apply: fn(&mut TrainConfig),
}

impl Preset {
    /// The configuration this preset trains with (defaults for everything it does not set).
    pub fn config(&self) -> TrainConfig {
        let mut config = TrainConfig::default();
        (self.apply)(&mut config);
        config
    }

    /// Applies the preset's fields to `config`, leaving the others alone.
    pub fn apply_to(&self, config: &mut TrainConfig) {
        (self.apply)(config);
    }
}

/// Every preset, in menu order.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "sigmoid-vs-relu",
        question: "Why does everyone use ReLU instead of sigmoid?",
        explanation: "The same six-convolution net, every hidden layer sigmoid. Sigmoid's slope is at most 0.25, so \
            each layer shrinks the gradient on its way back; the early filters barely move and the loss sits near \
            ln 10 = 2.30 for hundreds of steps. Switch every layer to ReLU (slope 1 where it is active) and the \
            same net learns within a few hundred steps.",
        other_arm: Switch::Activation(Activation::Relu),
        steps: 300,
        apply: |c| {
            c.arch = "deep6".into();
            c.activation = Activation::Sigmoid;
        },
    },
    Preset {
        name: "saturation",
        question: "What does a saturated sigmoid look like, and what does batch-norm do about it?",
        explanation: "Sigmoid units with weights drawn far too large (σ = 1): the pre-activations spread over ±10, \
            so most inputs land on the flat tails of the curve where f' about 0 — see the activation panel's \
            histogram and the saturated meter. Turn batch-norm on: it rescales each unit's inputs to mean 0 and \
            variance 1, back into the curve's steep middle, and learning speeds up.",
        other_arm: Switch::BatchNorm,
        steps: 300,
        apply: |c| {
            c.activation = Activation::Sigmoid;
            c.init = Some(Init::Normal { std: 1.0 });
        },
    },
    Preset {
        name: "dead-relu",
        question: "Why did my ReLU net suddenly stop learning?",
        explanation: "ReLU at a learning rate ten times too high (0.1 with momentum 0.9). The first big updates push \
            the second layer's pre-activations below zero for every input; a ReLU that never fires has zero \
            gradient, so it can never recover. Watch the dead meter climb to 100 % and the loss freeze at 2.30. \
            At 0.01 the same net trains.",
        other_arm: Switch::LearningRate(0.01),
        steps: 300,
        apply: |c| {
            c.activation = Activation::Relu;
            c.lr = 0.1;
        },
    },
    Preset {
        name: "vanishing-gradients",
        question: "Why are my first layer's gradients 1e-6?",
        explanation: "A deep all-sigmoid net. The gradient reaching a layer is the product of the slopes of every \
            layer above it, and a sigmoid's slope is at most 0.25: after six layers the first one gets a gradient \
            thousands of times smaller than the last (see the gradient-flow view). ReLU, or batch-norm, keeps \
            the product near 1.",
        other_arm: Switch::Activation(Activation::Relu),
        steps: 200,
        apply: |c| {
            c.arch = "deep6".into();
            c.activation = Activation::Sigmoid;
            c.init = Some(Init::Xavier);
        },
    },
    Preset {
        name: "bias",
        question: "When does a bias matter?",
        explanation: "Raw pixels (x/255, not standardised: the background stays exactly 0), a small sigmoid conv \
            net, and no bias anywhere. Over the background every pre-activation is exactly zero whatever the \
            weights, so each sigmoid unit sits at 0.5 there and cannot move off it; the layers above see a large \
            constant they cannot cancel (in the window, conv1's activation maps are flat over the background). \
            Trained with the bias on from the start, the same net reaches a clearly lower loss (0.36 against 0.55 \
            after 300 steps here). In the window, switch every bias on around step 150: the loss falls faster \
            at once (0.62 against 0.73 over the next 50 steps here) and the maps' background starts to move. A ReLU \
            net hardly cares: ReLU(0) is already 'off'.",
        other_arm: Switch::Bias,
        steps: 300,
        apply: |c| {
            c.arch = "conv 4 5x5 pad 2, pool 4".into();
            c.activation = Activation::Sigmoid;
            c.lr = 0.05;
            c.normalize = false;
            c.bias = false;
        },
    },
    Preset {
        name: "output-layer",
        question: "Softmax with cross-entropy, or sigmoid outputs?",
        explanation: "Independent sigmoid outputs with binary cross-entropy: each class is a separate yes/no \
            question, so nine of every ten targets are 'no' and the early gradient mostly says 'lower every \
            score'. Softmax with cross-entropy makes the classes compete and learns faster on one-label data: \
            trained with it from the start, the same net is at 61 % train accuracy after 50 steps against 44 %, \
            and 94 % against 91 % after 300. Switched in the window at step 100 it reaches 95 % by step 300. \
            Compare accuracies, not losses: the loss jumps at the switch because the two losses measure on \
            different scales.",
        other_arm: Switch::Output(OutputKind::Softmax),
        steps: 300,
        apply: |c| {
            c.output = OutputKind::Sigmoid;
        },
    },
    Preset {
        name: "regression-output",
        question: "Should the last layer of a net that predicts a number be ReLU or linear?",
        explanation: "The net predicts each digit's slant (how far it leans; negative to the left), a number \
            with both signs, on standardised targets, with a ReLU on its output. A ReLU cannot go below 0: every \
            digit whose target is below the mean gets 0, and at 0 ReLU passes no gradient back, so nothing pulls \
            those outputs down — the scatter shows a flat floor, and the output layer's pinned meter the share \
            stuck on it. R² stays far below the identity arm's (0.49 against 0.95 after 600 steps here, about half the outputs pinned). A \
            linear (identity) output can reach any target: use it for regression, and a bounded activation only \
            when the targets are bounded the same way.",
        other_arm: Switch::OutputActivation(Activation::Identity),
        steps: 600,
        apply: |c| {
            c.switch_task(Task::Regression(Target::Slant));
            c.output_activation = Activation::Relu;
        },
    },
];

/// The preset called `name`.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The names, comma-separated, for error messages.
pub fn names() -> String {
    PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_configuration_and_differs_from_the_default() {
        for preset in PRESETS {
            let config = preset.config();
            assert!(config.validate().is_ok(), "{}", preset.name);
            // Its spec plans on the embedded digits, the data every preset starts on.
            let digits = crate::arch::ImageShape { channels: 1, height: 28, width: 28 };
            assert!(config.plan(digits, 10).is_ok(), "{}: {:?}", preset.name, config.plan(digits, 10).err());
            assert_ne!(config, TrainConfig::default(), "{} changes something", preset.name);
            // The other arm is a valid configuration too, and its switch really changes the preset's.
            let hidden = crate::arch::LayerSettings {
                activation: config.activation,
                bias: config.bias,
                batch_norm: config.batch_norm,
                init: Init::He,
            };
            let output = if config.task.is_regression() { config.output_activation } else { Activation::Identity };
            let start = vec![hidden, hidden, crate::arch::LayerSettings { activation: output, ..hidden }];
            let (mut other, mut layers) = (config.clone(), start.clone());
            for setting in preset.other_arm.settings(3) {
                setting.apply(&mut other, &mut layers).unwrap();
            }
            assert!(other.validate().is_ok(), "{}", preset.name);
            assert!(other != config || layers != start, "{}: the switch changes something", preset.name);
            assert!(preset.other_arm.flags().starts_with("--"), "{}", preset.name);
        }
        assert_eq!(find("Dead-ReLU").map(|p| p.name), Some("dead-relu"));
        assert!(find("nope").is_none());
    }
}
