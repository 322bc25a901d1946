import Foundation
import TestSupport
import XCTest

/// Progressive distillation (scripts/distill.lua, `ddpm distill`) on a tiny v-model, and the shipped student.
final class DistillTests: DDPMProcessTestCase {
    /// One round on a tiny teacher (4 -> 2 DDIM steps, its guidance w = 2 at timesteps 300-999
    /// folded in): the loss falls, the student's unguided 2-step samples are closer to the guided
    /// teacher's 4-step samples than the teacher's own guided 2-step samples and its unguided
    /// 4-step samples are, and the student's weights carry their sampling defaults (`ddpm sample`
    /// needs no flags).
    func testOneRoundMakesATwoStepStudentCloserToTheTeacher() throws {
        try requireMNIST()
        let teacherConfig = try script("teacher.lua", """
            local c = dofile("\(scriptsDir)/configs/tiny.lua")
            c.train.objective, c.train.loss, c.train.sample_every, c.train.checkpoint_every = "v", "l2", nil, 200
            return c
            """)
        let trained = try runDDPM(["train", "--config", teacherConfig, "--steps", "200", "--out", "teacher",
                                   "--data", mnistDir], in: dir)
        guard trained.status == 0 else { return XCTFail("teacher: \(trained.stderr)") }
        let config = try script("distill.lua", """
            return {distill = {teacher = "teacher/model.safetensors", start_steps = 4, final_steps = 2,
                               round_steps = 100, batch = 16, lr = 1e-3, eval_per_class = 0, checkpoint_every = 50,
                               guidance = 2, guidance_interval = "300,999"}}
            """)
        let distilled = try runDDPM(["distill", "--config", config, "--out", "student", "--data", mnistDir], in: dir)
        guard distilled.status == 0 else { return XCTFail("distill: \(distilled.stderr)") }
        XCTAssert(distilled.stdout.contains("distilled 1 rounds (4 -> 2 steps)"), distilled.stdout)
        XCTAssert(FileManager.default.fileExists(atPath: "\(dir)/student/round-2.safetensors"))

        let rows = try String(contentsOfFile: "\(dir)/student/loss.csv", encoding: .utf8)
            .split(separator: "\n").dropFirst().map { Double($0.split(separator: ",")[2])! }
        XCTAssertEqual(rows.count, 100)
        let first = rows.prefix(20).reduce(0, +) / 20, last = rows.suffix(20).reduce(0, +) / 20
        XCTAssertLessThan(last, 0.7 * first, "loss \(first) -> \(last)")

        let check = try script("check.lua", """
            local teacher = ddpm.load_model("teacher/model.safetensors")
            local student = ddpm.load_model("student/model.safetensors")
            local labels, seeds = {}, {}
            for i = 1, 40 do labels[i], seeds[i] = (i - 1) % 10, 100 + i end
            local function run(m, steps, w)
              return ddpm.sample{model = m, schedule = m.schedule, labels = labels, seeds = seeds, sampler = "ddim",
                                 options = {spacing = "trailing"}, steps = steps, guidance = w,
                                 guidance_interval = {300, 999}}
            end
            -- the teacher guided (w = 2 at timesteps 300-999); the student unguided, one forward a step
            local reference = run(teacher, 4, 2)
            print(string.format("%.6g %.6g %.6g", (run(teacher, 2, 2) - reference):square():mean():item(),
                                (run(student, 2, 1) - reference):square():mean():item(),
                                (run(teacher, 4, 1) - reference):square():mean():item()))
            """)
        let r = try runDDPM(["run", check], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let errors = r.stdout.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
        XCTAssertEqual(errors.count, 3, r.stdout)
        XCTAssertLessThan(errors[1], 0.5 * errors[0], "student vs the teacher at 2 steps: \(errors)")
        XCTAssertLessThan(errors[1], 0.5 * errors[2], "guidance folded in: student vs unguided teacher: \(errors)")

        let sheet = try runDDPM(["sample", "--weights", "student/model.safetensors", "--digits", "01",
                                 "--per-digit", "2", "--out", "sheet.png"], in: dir)
        XCTAssertEqual(sheet.status, 0, sheet.stderr)
        XCTAssert(sheet.stdout.contains("ddim (spacing=trailing) 2 steps, guidance 1"), sheet.stdout)
        let info = try runDDPM(["info", "student/checkpoint.safetensors"], in: dir)
        XCTAssert(info.stdout.contains("objective: v (the run's config)"), info.stdout)
    }

    /// The shipped student samples from its own metadata (DDIM, trailing, 2 steps, unguided: 2
    /// forwards) and makes the requested digits: the evaluation classifier reads at least 19 of
    /// 20 (its model card: 99.7 % of 1000).
    func testShippedStudentMakesTheDigitsInTwoForwards() throws {
        try requireMNIST()
        let r = try runDDPM(["eval", "--weights", repoRoot + "/weights/mnist-small-distilled.safetensors",
                             "--per-class", "2", "--json", "--precision", "fp32"],
                            environment: ["DDPM_DATA": mnistDir])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(j["sampler"] as? String, "ddim")
        XCTAssertEqual(j["steps"] as? Int, 2)
        XCTAssertEqual(j["network_evaluations"] as? Int, 2)
        XCTAssertEqual(j["guidance"] as? Double, 1)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(j["accuracy"] as? Double), 95, r.stdout)
    }

    func testBadRoundsAreErrors() throws {
        let config = try script("bad.lua", """
            return {distill = {teacher = "nowhere.safetensors", start_steps = 12, final_steps = 4}}
            """)
        try expectFailure(["distill", "--config", config, "--out", "out"],
                          contains: ["start_steps (12) must be final_steps (4) times a power of two"])
        let cases = [
            ("start_step = 8", "unknown distill field(s) start_step"),
            ("start_steps = 16, final_steps = 2, round_steps = {10, 10}",
             "distill.round_steps must be whole numbers >= 1 (round 3: nil)"),
            ("checkpoint_every = 0", "distill.checkpoint_every must be a whole number >= 1, got 0"),
            ("eval_per_class = 1", "distill.eval_per_class must be 0 (no probe) or >= 2, got 1"),
            ("guidance = 'strong'", "distill.guidance must be a number > 0, got strong"),
            ("objective = 'eps'", "distill.objective must be v or x0"),
        ]
        for (i, (fields, message)) in cases.enumerated() {
            let config = try script("bad\(i).lua", "return {distill = {\(fields)}}")
            try expectFailure(["distill", "--config", config, "--out", "out\(i)"], contains: [message])
        }
    }
}
