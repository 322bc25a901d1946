import Autograd

extension Generator {
    /// The Lua API's default generator, as torch's: `ddpm.seed(n)` reseeds it, the bindings that
    /// draw random numbers without an explicit generator use it, and checkpoints save its state
    /// so a resumed run draws the same numbers. Global because every binding shares it; only the
    /// Lua host's thread touches it.
    nonisolated(unsafe) public static var global = Generator(seed: 0)
}
