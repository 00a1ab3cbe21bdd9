//! The worker's side of repeating the run over other seeds: what is repeated (the run's settings as they are
//! now, live per-layer switches included, and arm B's), with which seeds, and stopping a repeat that a newer request or a new net replaces.

use crate::protocol::Arm;
use crate::train::error::TrainError;
use crate::train::seeds::{SeedRequest, repeat_over_seeds};

use super::{Refused, Worker};

/// The most seeds one request may ask for.
pub(super) const MOST_SEEDS: u32 = 20;

impl Worker {
    /// Starts repeating the run's settings (and arm B's) with `seeds` other seeds for `steps` steps each,
    /// replacing a repeat under way; 0 seeds only stops that one.
    pub(super) fn repeat_over_seeds(&mut self, seeds: u32, steps: u64) -> Result<(), Refused> {
        self.seed_repeat = None;
        if seeds == 0 {
            return Ok(());
        }
        if seeds > MOST_SEEDS || steps == 0 {
            return Err(Refused::SeedRequest { seeds, steps, most: MOST_SEEDS });
        }
        let driver = self.driver.as_ref().ok_or(TrainError::NoNet)?;
        let config = driver.trainer().config().clone();
        let mut arms = vec![(Arm::A, config.clone(), driver.trainer().model().settings())];
        if let Some(b) = self.arm_b.as_ref().filter(|b| b.behind.is_none()) {
            let trainer = b.driver.trainer();
            arms.push((Arm::B, trainer.config().clone(), trainer.model().settings()));
        }
        // Other seeds than the run's own: the live curve is the first of the sample.
        let seeds = (1..=u64::from(seeds)).map(|i| config.seed.wrapping_add(i)).collect();
        let request = SeedRequest { arms, seeds, steps, data: self.data.clone(), backend: self.backend };
        let repeat = repeat_over_seeds(request, self.events.clone(), self.waker.clone()).map_err(Refused::Loader)?;
        self.seed_repeat = Some(repeat);
        Ok(())
    }
}
