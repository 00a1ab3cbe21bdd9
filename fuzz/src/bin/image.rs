//! AFL++ entry point of the `image` target; the harness is `convscope_fuzz::targets::image` (see there).

fn main() {
    let mut run = convscope_fuzz::targets::image::setup();
    afl::fuzz!(|data: &[u8]| run(data));
}
