//! AFL++ entry point of the `cifar` target; the harness is `convscope_fuzz::targets::cifar` (see there).

fn main() {
    let mut run = convscope_fuzz::targets::cifar::setup();
    afl::fuzz!(|data: &[u8]| run(data));
}
