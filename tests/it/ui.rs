//! The real window's panels driven through egui_kittest with a fake worker: clicks, combo boxes, sliders,
//! typed text and exports, plus a rendered snapshot where a software GPU adapter exists.

use convscope::app::panels::Panel;
use convscope::app::{ConvscopeApp, FakeWorker, State};
use convscope::arch::{Activation, OutputKind};
use convscope::config::{BackendKind, Setting, TrainConfig};
use convscope::protocol::{Command, RunState, WorkerEvent};
use convscope::train::{Driven, Driver, Evaluation, PROBE_THUMBNAILS};
use eframe::egui;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::support::{mnist, scratch_dir, window_on};

/// Events of a real run: a started net, 30 steps of metrics and a snapshot, the worker running.
fn real_events() -> Vec<WorkerEvent> {
    run_events(TrainConfig { test_every: 10, ..TrainConfig::default() }, 30, 0)
}

/// Events of `steps` real steps of `config` through the real driver, with layer statistics every
/// `stats_every` steps (0: none), and the hints the worker would send.
fn run_events(config: TrainConfig, steps: usize, stats_every: u64) -> Vec<WorkerEvent> {
    let mut driver = Driver::new(config, mnist(), BackendKind::Flex, Evaluation::Never).unwrap();
    driver.trainer_mut().set_stats_every(stats_every);
    let mut rows = Vec::new();
    for _ in 0..steps {
        if let Driven::Updated { row, .. } = driver.step(false).unwrap() {
            rows.push(row);
        }
    }
    let trainer = driver.trainer();
    vec![
        WorkerEvent::Started(Box::new(trainer.run_info(PROBE_THUMBNAILS))),
        WorkerEvent::Metrics(rows),
        WorkerEvent::Snapshot(Box::new(trainer.refresh_snapshot().unwrap())),
        WorkerEvent::Hints(driver.hints()),
        WorkerEvent::State { state: RunState::Running, step: steps as u64 },
    ]
}

fn harness(fake: &FakeWorker) -> Harness<'static, ConvscopeApp> {
    harness_with(fake, real_events())
}

fn harness_with(fake: &FakeWorker, events: Vec<WorkerEvent>) -> Harness<'static, ConvscopeApp> {
    for event in events {
        fake.push(event);
    }
    window_on(fake, egui::vec2(1280.0, 800.0))
}

#[test]
fn a_dead_relu_run_is_diagnosed_and_an_experiment_loads_on_confirmation() {
    let fake = FakeWorker::default();
    let config = TrainConfig { test_every: 0, ..convscope::diagnose::presets::find("dead-relu").unwrap().config() };
    let mut harness = harness_with(&fake, run_events(config, 120, 1));
    // The diagnosis names the rule, and the layers panel's meter shows the dead share.
    harness.get_by_label("dead-relu");
    harness.get_by_label("dead 100 %");
    assert!(harness.query_by_label_contains("of its ReLU units are dead").is_some());
    harness.get_by_role_and_label(Role::ComboBox, "Experiment").click();
    harness.run_steps(2);
    harness.get_by_role(Role::ListBox).get_by_label("vanishing-gradients").click();
    harness.run_steps(2);
    harness.get_by_label("Load experiment…").click();
    harness.run_steps(2);
    assert!(fake.sent().is_empty(), "asks first: {:?}", fake.sent());
    harness.get_by_label("Load now").click();
    harness.run_steps(2);
    let sent = fake.sent();
    let [Command::Reset(config), Command::Fork(arm_b)] = sent.as_slice() else {
        panic!("expected a reset and a fork, got {sent:?}")
    };
    assert_eq!((config.arch.as_str(), config.activation), ("deep6", Activation::Sigmoid));
    // The experiment opens as an A/B run: arm B switches deep6's six hidden layers to ReLU.
    assert_eq!(arm_b.len(), 6);
    assert!(arm_b.iter().all(|s| matches!(s, Setting::Activation { activation: Activation::Relu, .. })), "{arm_b:?}");
    // Once the worker announces the experiment's net, the spec editor follows it.
    fake.push(run_events((**config).clone(), 1, 0).remove(0));
    harness.run_steps(2);
    assert_eq!(harness.state().state.settings.spec_text, "deep6", "the spec editor follows the experiment");
}

#[test]
fn pause_button_sends_pause() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    assert!(fake.sent().is_empty(), "nothing is sent before the user acts: {:?}", fake.sent());
    harness.get_by_label("Pause").click();
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::Pause]);
}

#[test]
fn choosing_sigmoid_for_layer_one_sends_the_command_and_redraws_the_curve() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    let before = harness.state().state.curves.last_curves[0].clone();
    assert_eq!(before.activation, Activation::Relu);
    assert_eq!(before.at(0.0), Some((0.0, 0.0)));
    harness.get_by_role_and_label(Role::ComboBox, "conv1 activation").click();
    harness.run_steps(2);
    harness.get_by_role(Role::ListBox).get_by_label("sigmoid").click();
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::Change(Setting::Activation { layer: 0, activation: Activation::Sigmoid })]);
    let curve = harness.state().state.curves.last_curves[0].clone();
    assert_eq!(curve.layer, "conv1");
    assert_eq!(curve.activation, Activation::Sigmoid);
    let (f, df) = curve.at(0.0).unwrap();
    assert!((f - 0.5).abs() < 1e-12, "sigmoid(0) = {f}");
    assert!((df - 0.25).abs() < 1e-12, "sigmoid'(0) = {df}");
    // The other hidden layer is untouched.
    assert_eq!(harness.state().state.curves.last_curves[1].activation, Activation::Relu);
}

#[test]
fn the_init_is_a_live_change_at_step_zero_and_the_next_rebuild_s_after_it() {
    use convscope::arch::Init;
    // Tall enough that the settings panel is on screen.
    let tall = |fake: &FakeWorker, events: Vec<WorkerEvent>| {
        events.into_iter().for_each(|event| fake.push(event));
        window_on(fake, egui::vec2(1280.0, 1800.0))
    };
    let fake = FakeWorker::default();
    let mut fresh = tall(&fake, run_events(TrainConfig::default(), 0, 0));
    let pick = |harness: &mut Harness<'static, ConvscopeApp>, name: &str| {
        harness.get_by_role_and_label(Role::ComboBox, "Init").click();
        harness.run_steps(2);
        harness.get_by_role(Role::ListBox).get_by_label(name).click();
        harness.run_steps(2);
    };
    pick(&mut fresh, "normal:0.01");
    assert_eq!(fake.sent(), [Command::Change(Setting::Init(Init::Normal { std: 0.01 }))]);

    // After the first step the weights have trained: the choice waits for a rebuild, which builds with it.
    let fake = FakeWorker::default();
    let mut harness = tall(&fake, real_events());
    pick(&mut harness, "xavier");
    assert!(fake.sent().is_empty(), "{:?}", fake.sent());
    harness.get_by_label("Rebuild with this spec").click();
    harness.run_steps(2);
    harness.get_by_label("Rebuild now").click();
    harness.run_steps(2);
    assert!(matches!(fake.sent().as_slice(), [Command::Reset(config)] if config.init == Some(Init::Xavier)));
}

#[test]
fn moving_the_learning_rate_slider_sends_the_new_rate() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.get_by_role_and_label(Role::Slider, "Learning rate").set_value_accesskit(0.25);
    harness.run_steps(3);
    let rates: Vec<f64> = fake
        .sent()
        .iter()
        .filter_map(|c| if let Command::Change(Setting::LearningRate(lr)) = c { Some(*lr) } else { None })
        .collect();
    assert_eq!(rates.len(), 1, "one command per change: {:?}", fake.sent());
    assert!((rates[0] - 0.25).abs() < 1e-9, "{rates:?}");
}

/// A rate typed into the slider's number goes to the worker once, when the typing is done: not "0", "0.0",
/// "0.00" on the way (each clamped to the slider's floor and sent as a change, with its marker on the plots).
#[test]
fn a_typed_learning_rate_is_sent_once_typing_ends() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.get_by_value("1.00e-2").hover();
    harness.run_steps(1);
    harness.get_by_value("1.00e-2").click();
    harness.run_steps(2);
    let field = |harness: &Harness<'static, ConvscopeApp>| {
        harness.get_by_role_and_label(Role::SpinButton, "Learning rate").is_focused()
    };
    assert!(field(&harness), "a click on the number opens it for typing");
    // Key by key, a frame each, as a person types (the whole text was selected, so it is replaced).
    for key in ["0", ".", "0", "0", "3"] {
        harness.get_by_role_and_label(Role::SpinButton, "Learning rate").type_text(key);
        harness.run_steps(1);
    }
    let rates = |fake: &FakeWorker| -> Vec<f64> {
        let sent = fake.sent();
        sent.iter()
            .filter_map(|c| if let Command::Change(Setting::LearningRate(lr)) = c { Some(*lr) } else { None })
            .collect()
    };
    assert_eq!(rates(&fake), Vec::<f64>::new(), "nothing is sent while typing");
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    let sent = rates(&fake);
    assert_eq!(sent.len(), 1, "one change for one typed rate: {sent:?}");
    assert!((sent[0] - 0.003).abs() < 1e-12, "{sent:?}");
}

#[test]
fn shortcuts_act_but_not_while_typing_in_a_text_field() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    // Without focus, Space pauses the running net.
    harness.key_press(egui::Key::Space);
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::Pause]);
    // Typed into the spec editor, the same keys are text.
    harness.get_by_role_and_label(Role::TextInput, "Architecture").focus();
    harness.run_steps(1);
    harness.get_by_role_and_label(Role::TextInput, "Architecture").type_text(" s r");
    harness.key_press(egui::Key::Space);
    harness.key_press(egui::Key::S);
    harness.key_press(egui::Key::R);
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::Pause], "keys typed into a field must not control training");
    assert!(!harness.state().state.toolbar.confirm_reset_pending(), "R in a text field must not ask to reset");
    assert_eq!(harness.state().state.settings.spec_text, "ref-mnist s r", "the keys went into the field");
    // And once the field lets go of the keyboard, S steps again.
    harness.key_press(egui::Key::Escape);
    harness.run_steps(1);
    harness.key_press(egui::Key::S);
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::Pause, Command::Step(1)]);
}

#[test]
fn a_divergence_banner_offers_restore_with_half_the_rate() {
    let fake = FakeWorker::default();
    let mut events = real_events();
    // The steps before the divergence blew up: the newest row carries their loss.
    let Some(WorkerEvent::Metrics(rows)) = events.get_mut(1) else { panic!("metrics second") };
    let good = rows[rows.len() - 5].clone();
    rows.last_mut().unwrap().loss = 2707.5;
    let Some(WorkerEvent::Snapshot(restored)) = events.get(2).cloned() else { panic!("snapshot third") };
    let mut harness = harness_with(&fake, events);
    harness.get_by_label_contains("loss 2707.5");
    fake.push(WorkerEvent::Diverged { step: 31, message: "training diverged at step 31: the loss is NaN".into() });
    fake.push(WorkerEvent::State { state: RunState::Paused, step: 30 });
    harness.run_steps(2);
    harness.get_by_label_contains("diverged at step 31");
    assert!(harness.query_by_label_contains("Nothing looks wrong").is_none(), "no all-clear under a divergence");
    harness.get_by_label_contains("Training diverged: the banner");
    harness.get_by_label("Restore and halve the rate").click();
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::RestoreHealthy { halve_lr: true }]);
    fake.push(WorkerEvent::Applied { command: Command::RestoreHealthy { halve_lr: true }, effective_step: 31 });
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("diverged at step 31").is_none(), "the banner goes once restored");
    assert_eq!(harness.state().view.config.lr, 0.005);
    // The exploded step's figures go; the restored weights' come with their snapshot.
    assert!(harness.query_by_label_contains("2707.5").is_none(), "the thrown-away loss is not shown");
    fake.push(WorkerEvent::Snapshot(Box::new(convscope::snapshot::Snapshot { loss: 0.3125, ..*restored })));
    harness.run_steps(2);
    harness.get_by_label_contains("restored · loss 0.3125");
    // The next step's row takes over again.
    fake.push(WorkerEvent::Metrics(vec![convscope::snapshot::MetricRow { step: 31, loss: 0.25, ..good }]));
    harness.run_steps(2);
    harness.get_by_label_contains("loss 0.2500");
    assert!(harness.query_by_label_contains("restored ·").is_none());
}

#[test]
fn reset_asks_first_and_holds_layer_changes_until_the_new_net_arrives() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.get_by_label("Reset…").click();
    harness.run_steps(2);
    assert!(fake.sent().is_empty(), "a reset asks first");
    harness.get_by_label("Reset now").click();
    harness.run_steps(2);
    assert!(
        matches!(fake.sent().as_slice(), [Command::Reset(config)] if config.seed == 1 && config.arch == "ref-mnist")
    );
    assert!(harness.state().view.reset_pending);
    for event in real_events().into_iter().take(1) {
        fake.push(event);
    }
    harness.run_steps(2);
    assert!(!harness.state().view.reset_pending, "the new net is announced");
}

#[test]
fn every_help_text_opens_and_draws() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    // Tall enough that every panel's help text lies inside the scroll areas' view.
    harness.set_size(egui::vec2(1280.0, 2000.0));
    harness.run_steps(2);
    for (panel, phrase) in [
        ("Controls help", "Shortcuts"),
        ("Layers help", "vanishing-gradient"),
        ("Filters and weight gradients help", "pushes that weight down"),
        ("Activation curves help", "Grey bars"),
        ("Metrics help", "Learning rate: on a log scale"),
        ("Gradient flow help", "a layer in it barely learns"),
        ("Diagnosis help", "ready-made run"),
        ("Weight and gradient histograms help", "never left out"),
        ("Data help", "drop a folder"),
        ("Probe and activation maps help", "pushed through the net"),
        ("Export help", "colour scale"),
    ] {
        harness.get_by_label(panel).click();
        // Drawing a glyph the bundled fonts lack would panic here.
        harness.run_steps(2);
        harness.get_by_label_contains(phrase);
    }
    assert!(fake.sent().is_empty());
}

#[test]
fn export_writes_real_png_files() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    // Tall enough that the export button at the bottom of the left panel is in view.
    harness.set_size(egui::vec2(1280.0, 2000.0));
    let dir = scratch_dir("ui-export");
    harness.state_mut().state.export.export_dir = dir.display().to_string();
    harness.run_steps(1);
    harness.get_by_label("Export images").click();
    harness.run_steps(2);
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let grid = names.iter().find(|n| n.starts_with("conv1_filters_step000030_relu")).expect("filter grid exported");
    let image = image::open(dir.join(grid)).unwrap().to_rgb8();
    // 8 filters of 5×5 in a 3×3 grid with one-weight gaps, 12 pixels per weight: (3·6 + 1)·12 = 228, doubled
    // to reach the 320-pixel minimum, with the caption and colour scale underneath.
    assert_eq!(image.width(), 456);
    assert!(image.height() > 456 + 30, "{}", image.height());
    let bar =
        (456..image.height()).find(|&y| image.get_pixel(228, y).0.iter().all(|&c| c > 240)).expect("a colour bar");
    let (left, right) = (image.get_pixel(10, bar).0, image.get_pixel(445, bar).0);
    assert!(left[2] > left[0] && right[0] > right[2], "blue to red: {left:?} … {right:?}");
    assert!(names.iter().any(|n| n.starts_with("conv1_gradients_step000030_relu")));
    assert_eq!(names.iter().filter(|n| n.contains("_filter0")).count(), 8, "{names:?}");
    let maps = names.iter().find(|n| n.starts_with("conv1_activations")).expect("activation maps exported");
    assert!(image::open(dir.join(maps)).unwrap().width() > 28);
    // The output layer is named by its output kind, not its (identity) activation, and is not a speck.
    let output = names.iter().find(|n| n.starts_with("dense1_activations")).expect("output maps exported");
    assert!(output.starts_with("dense1_activations_step000030_softmax_probe"), "{output}");
    assert!(image::open(dir.join(output)).unwrap().width() >= 320);
}

#[test]
fn a_failed_export_is_reported_and_nothing_stops() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.set_size(egui::vec2(1280.0, 2000.0));
    let blocker = scratch_dir("ui-export-blocked").join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    harness.state_mut().state.export.export_dir = blocker.join("sub").display().to_string();
    harness.get_by_label("Export images").click();
    harness.run_steps(2);
    let messages = &harness.state().view.messages;
    assert!(messages.iter().any(|m| m.text.contains("export failed") && m.text.contains("a-file")), "{messages:?}");
    assert!(!fake.sent().contains(&Command::Pause));
}

/// A wgpu renderer on whatever adapter exists (lavapipe on CI), or `None` with the reason printed.
fn software_renderer() -> Option<egui_kittest::wgpu::WgpuTestRenderer> {
    let setup = egui_kittest::wgpu::default_wgpu_setup();
    // kittest's set-up panics when wgpu finds no adapter at all; that is the "skip" case here.
    let render_state = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        egui_kittest::wgpu::create_render_state(setup, eframe::egui_wgpu::RendererOptions::PREDICTABLE)
    }));
    match render_state {
        Ok(state) => Some(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(state)),
        Err(_) => {
            crate::support::cannot_run("there is no GPU or software (lavapipe / llvmpipe) adapter for wgpu");
            None
        }
    }
}

#[test]
fn render_snapshot_of_the_window() {
    let Some(renderer) = software_renderer() else { return };
    let fake = FakeWorker::default();
    for event in real_events() {
        fake.push(event);
    }
    let app = ConvscopeApp::new(State::default(), Box::new(fake));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .renderer(renderer)
        .build_ui_state(|ui, app: &mut ConvscopeApp| app.draw(ui), app);
    harness.run_steps(3);
    let image = harness.render().expect("render the window");
    assert_eq!((image.width(), image.height()), (1280, 800));
    // Not a blank frame: the filters, plots and text give many distinct colours.
    let colours: std::collections::HashSet<[u8; 4]> = image.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "only {} colours rendered", colours.len());
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("window-render.png");
    image.save(&out).unwrap();
}

/// A fixed, synthetic snapshot: four 3×3 filters with known weights and gradients.
fn synthetic_view() -> convscope::app::view::TrainingView {
    use convscope::arch::{Init, LayerSettings};
    use convscope::snapshot::{FloatArray, Histogram, LayerSnapshot, ProbeSnapshot, Snapshot};
    let weights: Vec<f32> = (0..36).map(|i| ((i as f32) - 17.5) / 17.5).collect();
    let grads: Vec<f32> = (0..36).map(|i| if i % 2 == 0 { 0.01 } else { -0.005 }).collect();
    let settings = LayerSettings { activation: Activation::Tanh, bias: true, batch_norm: false, init: Init::Xavier };
    let layer = LayerSnapshot {
        name: "conv1".into(),
        settings,
        weights: FloatArray::new(vec![4, 1, 3, 3], weights).unwrap(),
        weight_grads: FloatArray::new(vec![4, 1, 3, 3], grads),
        pre_activation_histogram: Histogram::of(&[-1.0, 0.0, 0.5, 1.0], 8),
        activation_range: (-0.9, 0.9),
        grad_range: (-0.005, 0.01),
        weight_norm: 1.0,
        grad_norm: 0.05,
    };
    let probe = ProbeSnapshot {
        index: 0,
        label: Some(0),
        own_image: None,
        input: FloatArray::new(vec![1, 2, 2], vec![0.0, 1.0, 1.0, 0.0]).unwrap(),
        pre_activations: vec![],
        post_activations: vec![],
        probabilities: vec![1.0],
        input_grad: None,
        activation_grads: vec![],
        attributed_class: None,
        regression: None,
    };
    let snapshot = Snapshot {
        step: 7,
        epoch: 0,
        lr: 0.01,
        loss: 1.0,
        train_accuracy: 0.5,
        layers: vec![layer],
        output: OutputKind::Softmax,
        probe,
        cost_secs: 0.0012,
        gap_secs: 0.1,
    };
    let mut view = convscope::app::view::TrainingView::new(TrainConfig::default());
    view.apply(WorkerEvent::Snapshot(Box::new(snapshot)));
    view
}

#[test]
fn filters_panel_render_matches_its_snapshot() {
    let Some(renderer) = software_renderer() else { return };
    let state = (convscope::app::panels::filters::FiltersPanel::default(), synthetic_view());
    let mut harness = Harness::builder().with_size(egui::vec2(520.0, 300.0)).renderer(renderer).build_ui_state(
        |ui, (panel, view): &mut (convscope::app::panels::filters::FiltersPanel, _)| {
            panel.ui(ui, view, &mut convscope::app::Outbox::default())
        },
        state,
    );
    harness.run_steps(2);
    assert_eq!(harness.state().0.scales, (1.0, 0.01), "one shared scale per grid: the largest magnitude");
    harness.snapshot("filters_panel");
}

/// A net without convolutions (`mlp`, from real steps): the filters panel says there is nothing of the kind to
/// draw, instead of waiting for a snapshot that has come.
#[test]
fn a_net_without_convolutions_says_so_in_the_filters_panel() {
    let fake = FakeWorker::default();
    let config = TrainConfig { arch: "mlp".into(), test_every: 10, ..TrainConfig::default() };
    let mut harness = harness_with(&fake, run_events(config, 5, 0));
    harness.run_steps(3);
    assert!(harness.query_by_label_contains("This net has no convolution layers").is_some());
    assert!(harness.query_by_label_contains("Waiting for the first snapshot").is_none());
}

/// Steps frames until `done` holds (the loader runs on a thread of its own), at most half a minute.
fn run_until(harness: &mut Harness<'static, ConvscopeApp>, mut done: impl FnMut(&ConvscopeApp) -> bool) {
    for _ in 0..3000 {
        harness.run_steps(1);
        if done(harness.state()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the condition never held");
}

#[test]
fn opening_data_loads_in_the_background_and_a_bad_folder_only_costs_a_message() {
    // The real worker behind the real window: the worker's loader thread reads the folder.
    let options = convscope::train::WorkerOptions { start_paused: true, threads: Some(1), ..Default::default() };
    let worker = convscope::train::WorkerHandle::spawn(crate::support::config(|_| {}), mnist(), options).unwrap();
    let app = ConvscopeApp::new(State::default(), Box::new(worker));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut ConvscopeApp| app.draw(ui), app);
    run_until(&mut harness, |app| app.view.train_len == 8000);
    let empty = scratch_dir("ui-empty-data");
    harness.state_mut().state.data.path = empty.display().to_string();
    harness.get_by_label("Open").click();
    let shown = empty.display().to_string();
    run_until(&mut harness, |app| app.view.messages.iter().any(|m| m.text.contains(&shown)));
    assert_eq!(harness.state().view.train_len, 8000, "the MNIST run stays");

    let folder = scratch_dir("ui-colour-data");
    for (class, colour) in [("red", [230u8, 20, 20]), ("blue", [20, 20, 230])] {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        for i in 0..6 {
            image::RgbImage::from_fn(16, 16, |x, y| image::Rgb(if (x + y + i) % 3 == 0 { colour } else { [250; 3] }))
                .save(folder.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    harness.state_mut().state.data.path = folder.display().to_string();
    harness.get_by_label("Open").click();
    run_until(&mut harness, |app| app.view.input.channels == 3);
    let view = &harness.state().view;
    assert_eq!(view.class_names, ["blue", "red"]);
    assert_eq!(view.config.arch, "ref-mnist", "the net's spec is kept; the worker rebuilt it for the new shape");
    assert_eq!(view.thumbnails.first().map(|t| t.shape.channels), Some(3));
}

#[test]
fn compiling_gpu_kernels_shows_as_a_state_not_a_freeze() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    fake.push(WorkerEvent::Warmup { message: Some("compiling GPU kernels for the wgpu backend".into()) });
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("compiling GPU kernels").is_some());
    // The window still answers while the worker compiles.
    harness.get_by_label("Pause").click();
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::Pause]);
    fake.push(WorkerEvent::Warmup { message: None });
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("compiling GPU kernels").is_none());
}

#[test]
fn the_status_line_shows_what_snapshots_cost_training() {
    let state = (convscope::app::panels::status::StatusBar::default(), synthetic_view());
    let mut harness = Harness::builder().with_size(egui::vec2(1200.0, 40.0)).build_ui_state(
        |ui, (bar, view): &mut (convscope::app::panels::status::StatusBar, _)| {
            bar.ui(ui, view, &mut convscope::app::Outbox::default())
        },
        state,
    );
    harness.run_steps(1);
    // 1.2 ms beyond a plain step, one snapshot every 100 ms: 1.2 % of training time.
    harness.get_by_label("1.2 ms every 100 ms (1.2 %)");
}

#[test]
fn the_pace_menu_and_the_full_speed_switch_send_the_pace() {
    use convscope::protocol::Pace;
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    assert_eq!(harness.state().state.toolbar.pace, convscope::protocol::WATCHABLE_PACE, "watchable by default");
    harness.get_by_label("Full speed").click();
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::SetPace(Pace::Full)]);
    harness.get_by_label("Watch").click();
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::ComboBox, "Pace").click();
    harness.run_steps(2);
    harness.get_by_role(Role::ListBox).get_by_label("2 steps/s").click();
    harness.run_steps(2);
    assert_eq!(
        fake.sent(),
        [Command::SetPace(Pace::Full), Command::SetPace(Pace::PerSecond(30.0)), Command::SetPace(Pace::PerSecond(2.0))]
    );
}

fn wheel(harness: &Harness<'static, ConvscopeApp>, at: egui::Pos2, delta: egui::Vec2, modifiers: egui::Modifiers) {
    harness.hover_at(at);
    harness.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta,
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers,
    });
}

fn loss_plot(harness: &Harness<'static, ConvscopeApp>) -> egui_plot::PlotMemory {
    let id = egui::Id::unique(("convscope-plot", "loss"));
    egui_plot::PlotMemory::load(&harness.ctx, id).expect("the loss plot was drawn")
}

fn loss_plot_bounds(harness: &Harness<'static, ConvscopeApp>) -> egui_plot::PlotBounds {
    *loss_plot(harness).bounds()
}

#[test]
fn the_wheel_over_a_plot_scrolls_the_page_and_leaves_the_plot_alone() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    // Scroll the centre column down to the loss plot, the way a user would: with the wheel.
    let centre = harness.get_by_label("Filters and weight gradients").rect().center();
    for _ in 0..12 {
        wheel(&harness, centre, egui::vec2(0.0, -200.0), egui::Modifiers::NONE);
        harness.run_steps(1);
    }
    harness.run_steps(3);
    let legend = harness.get_by_label("smoothed").rect();
    let bounds = loss_plot_bounds(&harness);
    // The wheel over the plot moves the page, not the plot's view.
    let over_plot = loss_plot(&harness).transform().frame().center();
    wheel(&harness, over_plot, egui::vec2(0.0, 120.0), egui::Modifiers::NONE);
    harness.run_steps(3);
    assert_eq!(loss_plot_bounds(&harness), bounds, "the plot's view did not move");
    let moved = harness.get_by_label("smoothed").rect();
    assert!(moved.top() > legend.top() + 20.0, "the page scrolled: {legend:?} → {moved:?}");
    // Ctrl+wheel is the deliberate zoom, and Reset view fits the plot again.
    let over_plot = loss_plot(&harness).transform().frame().center();
    wheel(
        &harness,
        over_plot,
        egui::vec2(0.0, 120.0),
        egui::Modifiers { ctrl: true, command: true, ..Default::default() },
    );
    harness.run_steps(3);
    let zoomed = loss_plot_bounds(&harness);
    assert_ne!(zoomed, bounds, "ctrl+wheel zooms");
    // The metrics panel's Reset view (the gradient-flow plot has its own, above it).
    harness.get_all_by_label("Reset view").last().expect("a Reset view button").click();
    harness.run_steps(3);
    assert_ne!(loss_plot_bounds(&harness), zoomed, "Reset view fits the plot again");
}

#[test]
fn a_change_marker_is_labelled_on_its_line_and_adds_no_legend_entry() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.set_size(egui::vec2(1280.0, 2400.0));
    harness.run_steps(2);
    let legends_before = harness.query_all_by_label("smoothed").count();
    assert_eq!(legends_before, 1, "legend entries are in the accessibility tree");
    for (step, lr) in [(10, 0.5), (20, 0.05)] {
        let command = Command::Change(Setting::LearningRate(lr));
        fake.push(WorkerEvent::Applied { command, effective_step: step });
    }
    harness.run_steps(3);
    assert_eq!(harness.state().view.markers.len(), 2);
    assert!(harness.query_by_label_contains("lr 5.000e-1").is_none(), "no legend entry for a marker");
}

#[test]
fn repeat_over_seeds_asks_the_worker_and_draws_the_band_of_the_runs_that_arrive() {
    use convscope::protocol::{Arm, SeedCurve, SeedRuns};
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.set_size(egui::vec2(1280.0, 2400.0));
    harness.run_steps(2);
    let step = harness.state().view.step;
    harness.get_by_label("Repeat over seeds").click();
    harness.run_steps(2);
    let asked = Command::RepeatOverSeeds { seeds: 3, steps: step.clamp(200, 5_000) };
    assert_eq!(fake.sent().last(), Some(&asked));
    fake.push(WorkerEvent::Applied { command: asked, effective_step: step + 1 });
    let curve = |seed| SeedCurve { seed, losses: vec![2.3, 1.5, 0.9, 0.6], test: Some(0.8), diverged_at: None };
    let runs = |n| SeedRuns { arm: Arm::A, asked: 3, steps: 4, runs: (1..=n).map(curve).collect() };
    fake.push(WorkerEvent::SeedRuns(Box::new(runs(1))));
    harness.run_steps(2);
    harness.get_by_label("seeds: 1 of 3 runs trained");
    harness.get_by_label("1 seed");
    harness.get_by_label("Stop seeds").click();
    harness.run_steps(2);
    assert_eq!(fake.sent().last(), Some(&Command::RepeatOverSeeds { seeds: 0, steps: step.clamp(200, 5_000) }));
    // The band keeps what was done, and a later run's arrival widens it.
    fake.push(WorkerEvent::SeedRuns(Box::new(runs(2))));
    harness.run_steps(2);
    harness.get_by_label("2 seeds");
    assert!(harness.query_by_label("Stop seeds").is_none(), "stopped: the button to start again is back");
    harness.get_by_label("Repeat over seeds");
}

#[test]
fn a_ten_layer_net_keeps_every_curve_in_reach_at_1024_by_700() {
    let fake = FakeWorker::default();
    let deep = ["conv 4 3x3"; 10].join(", ");
    let config = TrainConfig { arch: deep, test_every: 0, ..TrainConfig::default() };
    let mut harness = harness_with(&fake, run_events(config, 2, 0));
    harness.set_size(egui::vec2(1024.0, 700.0));
    harness.run_steps(3);
    for layer in 1..=10 {
        let title = format!("conv{layer} · relu");
        let rect = harness.get_by_label(&title).rect();
        // A title squeezed to one letter a line is a curve nobody can read: each stays on one line.
        assert!(rect.width() > 30.0 && rect.height() < 20.0, "{title} is squeezed to {rect:?}");
    }
    // The centre column keeps a usable width next to the side columns: the left column's table, spec line and
    // buttons wrap to it instead of widening it.
    let filters = harness.get_by_label("Filters and weight gradients").rect();
    let probe = harness.get_by_label("Probe and activation maps").rect();
    assert!(filters.left() < 390.0, "the centre starts at {}", filters.left());
    assert!(probe.left() - filters.left() > 360.0, "the centre is {} wide", probe.left() - filters.left());
    // Nothing in the centre runs on under the right column: the metrics' controls wrap.
    for button in harness.query_all_by_label("Reset view") {
        let right = button.rect().right();
        assert!(right < probe.left(), "a Reset view button ends at {right}, under the right column");
    }
}

#[test]
fn a_dead_layer_says_all_zero_instead_of_colouring_it_and_its_zero_gradients_stay_on_the_plot() {
    let fake = FakeWorker::default();
    let config = TrainConfig { test_every: 0, ..convscope::diagnose::presets::find("dead-relu").unwrap().config() };
    let mut harness = harness_with(&fake, run_events(config, 120, 1));
    harness.set_size(egui::vec2(1280.0, 3000.0));
    harness.run_steps(3);
    let says = |text: &str| harness.query_all_by_label_contains(text).count();
    assert!(says("all zero: no unit responds") > 0, "the dead layer's maps say so");
    assert!(says("exactly 0") > 0, "zero gradients are marked, not dropped");
}

#[test]
fn halving_and_doubling_the_rate_are_exact_steps() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.get_by_label("÷2").click();
    harness.run_steps(2);
    let command = Command::Change(Setting::LearningRate(0.005));
    assert_eq!(fake.sent(), std::slice::from_ref(&command));
    fake.push(WorkerEvent::Applied { command, effective_step: 31 });
    harness.run_steps(2);
    harness.get_by_label("×2").click();
    harness.run_steps(2);
    assert_eq!(fake.sent().last(), Some(&Command::Change(Setting::LearningRate(0.01))));
}

#[test]
fn a_preset_switches_its_other_arm_live_and_the_output_kind_is_switchable() {
    let fake = FakeWorker::default();
    let config = TrainConfig { test_every: 0, ..convscope::diagnose::presets::find("output-layer").unwrap().config() };
    let mut harness = harness_with(&fake, run_events(config, 1, 0));
    harness.get_by_role_and_label(Role::ComboBox, "Experiment").click();
    harness.run_steps(2);
    harness.get_by_role(Role::ListBox).get_by_label("output-layer").click();
    harness.run_steps(2);
    harness.get_by_label("Switch now: softmax output").click();
    harness.run_steps(2);
    let softmax = Command::Change(Setting::Output(OutputKind::Softmax));
    assert_eq!(fake.sent(), std::slice::from_ref(&softmax), "a live change, not a reset");
    fake.push(WorkerEvent::Applied { command: softmax, effective_step: 2 });
    harness.run_steps(2);
    assert_eq!(harness.state().view.markers[0].label, "output: softmax");
    // The Layers table's output picker shows it, and switches back.
    harness.get_by_role_and_label(Role::ComboBox, "dense1 output").click();
    harness.run_steps(2);
    harness.get_by_role(Role::ListBox).get_by_label("sigmoid").click();
    harness.run_steps(2);
    assert_eq!(fake.sent().last(), Some(&Command::Change(Setting::Output(OutputKind::Sigmoid))));
    // A deep net's switch covers every hidden layer and leaves the output layer alone.
    let deep = TrainConfig { test_every: 0, ..convscope::diagnose::presets::find("sigmoid-vs-relu").unwrap().config() };
    fake.push(run_events(deep, 1, 0).remove(0));
    harness.run_steps(2);
    harness.get_by_role_and_label(Role::ComboBox, "Experiment").click();
    harness.run_steps(2);
    harness.get_by_role(Role::ListBox).get_by_label("sigmoid-vs-relu").click();
    harness.run_steps(2);
    let before = fake.sent().len();
    harness.get_by_label("Switch now: every hidden layer to relu").click();
    harness.run_steps(2);
    let sent = fake.sent();
    let expected: Vec<Command> =
        (0..6).map(|layer| Command::Change(Setting::Activation { layer, activation: Activation::Relu })).collect();
    assert_eq!(sent[before..], expected[..]);
}

#[test]
fn ctrl_s_saves_a_checkpoint_without_stepping_and_a_typed_checkpoint_opens() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.set_size(egui::vec2(1280.0, 2400.0));
    harness.run_steps(2);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    harness.run_steps(2);
    assert_eq!(fake.sent(), [Command::SaveCheckpoint(None)], "Ctrl+S saves and does not step");
    let path = std::path::PathBuf::from("/runs/2026/checkpoint-step000030.ckpt");
    fake.push(WorkerEvent::Saved { step: 30, path: path.clone() });
    harness.run_steps(2);
    harness.get_by_label_contains("last saved: step 30");
    harness.get_by_label("Save checkpoint").click();
    harness.run_steps(2);
    assert_eq!(fake.sent().len(), 2);
    harness.state_mut().state.run.path = path.display().to_string();
    harness.run_steps(1);
    harness.get_by_label("Run help").click();
    harness.run_steps(1);
    harness.get_by_label_contains("exactly the ones it would have taken");
    harness.get_by_label("Continue").click();
    harness.run_steps(2);
    assert_eq!(fake.sent().last(), Some(&Command::OpenCheckpoint(path)));
}

#[test]
fn the_timeline_moves_every_panel_to_a_recorded_step_and_live_returns() {
    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    let live = harness.state().view.snapshot.clone().unwrap();
    assert_eq!(live.step, 30);
    // Two recorded snapshots of the past, as the worker would have written them.
    let history = scratch_dir("ui-timeline").join("history.bin");
    let mut writer = convscope::history::HistoryWriter::create(&history).unwrap();
    for step in [10, 20] {
        let mut old = (*live).clone();
        old.step = step;
        old.layers[0].weights.data.iter_mut().for_each(|w| *w = step as f32 / 100.0);
        let offset = writer.append(&WorkerEvent::Snapshot(Box::new(old))).unwrap();
        fake.push(WorkerEvent::Recorded { step, history: history.clone(), offset });
    }
    harness.run_steps(2);
    harness.get_by_label_contains("live · 2 recorded");
    // ← steps back into the record: every panel shows step 20's snapshot, the plots a cursor.
    harness.key_press(egui::Key::ArrowLeft);
    harness.run_steps(2);
    let shown = harness.state().view.snapshot.clone().unwrap();
    assert_eq!(shown.step, 20);
    assert!(shown.layers[0].weights.data.iter().all(|&w| w == 0.2), "the recorded weights, read back");
    harness.get_by_label_contains("showing step 20");
    assert_eq!(harness.state().view.live_snapshot().map(|s| s.step), Some(30), "the status line reads the live one");
    harness.get_by_label("‹").click();
    harness.run_steps(2);
    assert_eq!(harness.state().view.snapshot.as_ref().unwrap().step, 10);
    // Fork here: arm B is the run as it was at the step shown.
    harness.get_by_label("Fork here").click();
    harness.run_steps(2);
    assert_eq!(fake.sent().last(), Some(&Command::ForkAt { step: 10, changes: Vec::new() }));
    // A live snapshot arriving meanwhile waits; Live shows it.
    let mut newer = (*live).clone();
    newer.step = 40;
    fake.push(WorkerEvent::Snapshot(Box::new(newer)));
    harness.run_steps(2);
    assert_eq!(harness.state().view.snapshot.as_ref().unwrap().step, 10, "still showing the past");
    harness.get_by_label("Live").click();
    harness.run_steps(2);
    assert_eq!(harness.state().view.snapshot.as_ref().unwrap().step, 40);
    assert!(harness.state().view.timeline.shown.is_none());
    // A record that cannot be read is said, and the window stays live.
    std::fs::write(&history, b"gone").unwrap();
    harness.key_press(egui::Key::ArrowLeft);
    harness.run_steps(2);
    assert_eq!(harness.state().view.snapshot.as_ref().unwrap().step, 40);
    harness.get_by_label_contains("cannot show that snapshot");
}

#[test]
fn a_recorded_run_replays_in_the_window_with_its_timeline_and_says_how_to_continue() {
    let run = scratch_dir("ui-replay");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_convscope"))
        .args(["train", "--steps", "60", "--snapshot-every", "10", "--save-every", "30", "--out"])
        .arg(&run)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let (replay, summary) = convscope::replay::Replay::open(&run).unwrap();
    assert_eq!((summary.snapshots, summary.last_step), (6, 60));
    assert!(summary.checkpoint.as_ref().is_some_and(|p| p.ends_with("checkpoint-step000060.ckpt")));
    let app = ConvscopeApp::new(State::default(), Box::new(replay));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut ConvscopeApp| app.draw(ui), app);
    harness.run_steps(3);
    let view = &harness.state().view;
    assert_eq!(view.rows.len(), 60, "every recorded row");
    assert_eq!(view.snapshot.as_ref().map(|s| s.step), Some(60), "the last snapshot on show");
    assert_eq!(view.timeline.points.len(), 6);
    harness.get_by_label_contains("live · 6 recorded");
    // The timeline reads the record back: step 10's filters.
    harness.key_press(egui::Key::Home);
    for _ in 0..6 {
        harness.key_press(egui::Key::ArrowLeft);
        harness.run_steps(1);
    }
    assert_eq!(harness.state().view.snapshot.as_ref().map(|s| s.step), Some(10));
    // Nothing trains: asking to is answered with how to continue.
    harness.get_by_label("Play").click();
    harness.run_steps(3);
    harness.get_by_label_contains("convscope --resume");

    // With a way to train, Play continues the run live from its newest checkpoint: step 61 on.
    let (replay, _) = convscope::replay::Replay::open(&run).unwrap();
    let start =
        Box::new(|checkpoint: std::path::PathBuf| -> std::io::Result<Box<dyn convscope::protocol::WorkerLink>> {
            let options = convscope::train::WorkerOptions {
                threads: Some(1),
                resume: Some(checkpoint),
                ..convscope::train::WorkerOptions::default()
            };
            Ok(Box::new(convscope::train::WorkerHandle::spawn(TrainConfig::default(), mnist(), options)?))
        });
    let app = ConvscopeApp::new(State::default(), Box::new(replay.continue_with(start)));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut ConvscopeApp| app.draw(ui), app);
    harness.run_steps(3);
    harness.get_by_label("Play").click();
    run_until(&mut harness, |app| app.view.rows.last().is_some_and(|r| r.step > 65));
    let first = harness.state().view.rows.first().map(|r| r.step);
    assert_eq!(first, Some(61), "the live run goes on from the checkpoint's step");
}

#[test]
fn the_run_panel_lists_recorded_runs_newest_first_and_opens_one() {
    let runs = scratch_dir("ui-runs");
    for name in ["2026-01-01_10-00-00", "2026-02-01_10-00-00"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_convscope"))
            .args(["train", "--steps", "20", "--snapshot-every", "10", "--out"])
            .arg(runs.join(name))
            .env("RAYON_NUM_THREADS", "2")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::create_dir_all(runs.join("not-a-run")).unwrap();
    let listed = convscope::app::panels::run::recorded_runs(&runs);
    let names: Vec<String> =
        listed.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["2026-02-01_10-00-00", "2026-01-01_10-00-00"],
        "newest first, folders without a history left out"
    );

    let fake = FakeWorker::default();
    let mut harness = harness(&fake);
    harness.set_size(egui::vec2(1280.0, 2400.0));
    let open: convscope::app::RunOpener = Box::new(|run: &std::path::Path| {
        let (replay, summary) = convscope::replay::Replay::open(run)?;
        Ok((
            Box::new(replay) as Box<dyn convscope::protocol::WorkerLink>,
            format!("replaying {} snapshots", summary.snapshots),
        ))
    });
    // The newer one is the run training now: the list leaves it out.
    let current = Some(runs.join("2026-02-01_10-00-00"));
    harness.state_mut().keep_runs(convscope::app::Runs { dir: runs.clone(), open, current });
    harness.run_steps(2);
    harness.get_by_label("Open run…").click();
    harness.run_steps(2);
    assert!(harness.query_by_label_contains("2026-02-01_10-00-00").is_none(), "the run training now is not listed");
    harness.get_by_label_contains("2026-01-01_10-00-00 ·").click();
    run_until(&mut harness, |app| app.view.rows.len() == 20 && app.view.timeline.points.len() == 2);
    harness.get_by_label_contains("replaying 2 snapshots");
    assert_eq!(harness.state().view.snapshot.as_ref().map(|s| s.step), Some(20));
}

#[test]
fn a_failed_step_is_shown_and_training_can_go_on_from_the_window() {
    let fake = FakeWorker::default();
    let mut events = real_events();
    events.push(WorkerEvent::Failed {
        step: 31,
        message: "the step panicked: a fault injected at step 31; the weights are as before the step; training paused"
            .into(),
    });
    events.push(WorkerEvent::State { state: RunState::Paused, step: 30 });
    let mut harness = harness_with(&fake, events);
    // The window is still up, says what failed, and offers Play and Step as usual.
    assert!(harness.query_by_label_contains("a fault injected at step 31").is_some());
    harness.get_by_label("Step").click();
    harness.run_steps(2);
    harness.get_by_label("Play").click();
    harness.run_steps(2);
    let sent = fake.sent();
    assert!(sent.contains(&Command::Step(1)) && sent.contains(&Command::Resume), "{sent:?}");
}

#[test]
fn the_timelapse_button_writes_a_gif_of_the_recorded_snapshots_without_stopping_the_window() {
    let run = scratch_dir("ui-timelapse");
    let output = crate::support::convscope(&[
        "train",
        "--steps",
        "30",
        "--snapshot-every",
        "10",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", crate::support::stderr(&output));
    let fake = FakeWorker::default();
    for event in real_events() {
        fake.push(event);
    }
    // Tall enough that the Export panel, last in the left column, is on screen.
    let mut harness = window_on(&fake, egui::vec2(1280.0, 1800.0));
    let history = run.join("history.bin");
    for step in [10, 20] {
        fake.push(WorkerEvent::Recorded { step, history: history.clone(), offset: 0 });
    }
    let export = run.join("export");
    harness.state_mut().state.export.export_dir = export.display().to_string();
    harness.run_steps(2);
    harness.get_by_label("Timelapse GIF").click();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !harness.state().view.messages.iter().any(|m| m.text.contains("timelapse")) {
        assert!(std::time::Instant::now() < deadline, "the timelapse never finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
        harness.run_steps(1);
    }
    let message = &harness.state().view.messages.last().unwrap().text;
    assert!(message.contains("wrote") && message.contains("conv1_timelapse.gif"), "{message}");
    let mut decoder =
        gif::DecodeOptions::new().read_info(std::fs::File::open(export.join("conv1_timelapse.gif")).unwrap()).unwrap();
    let mut frames = 0;
    while decoder.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 3, "one frame per recorded snapshot");
}

#[test]
fn scrubbing_back_moves_the_layer_health_meters_to_the_shown_step() {
    let fake = FakeWorker::default();
    let config = TrainConfig { test_every: 0, ..convscope::diagnose::presets::find("dead-relu").unwrap().config() };
    let mut events = run_events(config, 120, 1);
    let snapshot =
        events.iter().find_map(|e| if let WorkerEvent::Snapshot(s) = e { Some(s.clone()) } else { None }).unwrap();
    let mut harness = harness_with(&fake, std::mem::take(&mut events));
    harness.get_by_label("dead 100 %");
    // The timeline shows a snapshot from the first step: the meters read the statistics up to it.
    let view = &mut harness.state_mut().view;
    view.timeline.recorded(1, std::path::PathBuf::from("history.bin"), 0);
    view.show_recorded(0, snapshot);
    harness.run_steps(2);
    assert!(harness.query_by_label("dead 100 %").is_none(), "the live share is not what step 1 had");
    assert!(harness.query_all_by_label_contains("dead ").count() >= 2, "each ReLU layer still has its meter");
}
