//! The window's export: the filter panel's layer as on screen (its colour scales, channel view and RGB
//! choice), each filter on its own, and the probe's activation maps, all stamped with the step.

use std::path::{Path, PathBuf};

use crate::app::panels::filters::FiltersPanel;
use crate::app::view::TrainingView;
use crate::export::{self, ExportError, GridStyle};

/// Writes the shown layer's filter and gradient grids (with the on-screen scales), every filter as its own
/// PNG, and the probe's activation maps into `dir`; names carry layer, step and activation.
pub fn export_images(view: &TrainingView, filters: &FiltersPanel, dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let snapshot = view.snapshot.as_ref().ok_or(ExportError::Nothing("no snapshot has arrived yet"))?;
    export::create_dir(dir)?;
    let mut written = Vec::new();
    if let Some(layer) = filters.shown(view) {
        let (weight_scale, grad_scale) = filters.scales;
        let style = GridStyle { weight_scale, grad_scale, rgb: filters.rgb, channel: Some(filters.channel) };
        written.extend(export::write_layer_grids(layer, style, dir, Some(snapshot.step))?);
        written.extend(export::write_filter_tiles(layer, style, dir, snapshot.step)?);
    }
    written.extend(export::write_activation_maps(snapshot, dir)?);
    Ok(written)
}
