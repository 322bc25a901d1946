import Foundation

/// Whether a process launcher started this process as part of an MPI job. MPI starts only then:
/// Open MPI's singleton start-up (a process run without `mpirun` calling MPI_Init) spawns a helper
/// daemon and takes ~0.6 s, which every `ddpm` command would pay for nothing.
///
/// `DDPM_MPI=1` starts MPI anyway (a singleton job), `DDPM_MPI=0` never starts it.
public enum Launcher {
    /// Variables set by the launchers for each process they start: Open MPI's mpirun, PMIx
    /// launchers (srun --mpi=pmix, prterun), and PMI launchers (MPICH's hydra, srun --mpi=pmi2).
    static let variables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"]

    public static func detected(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        switch environment["DDPM_MPI"] {
        case "1": return true
        case "0": return false
        default: return variables.contains { environment[$0] != nil }
        }
    }
}
