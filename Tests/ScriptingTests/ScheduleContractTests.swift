import Foundation
import Scripting
import Storage
import TestSupport
import XCTest

/// What the Lua schedule API promises: errors in its own (1-based) terms, alpha-bar functions
/// that start at 1, the schedule a weights file records (and a loaded model checks timesteps
/// against), and config schedule files found next to their config.
final class ScheduleContractTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func luaError(_ code: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try runLua(code)
            XCTFail("no error from: \(code)", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testBetasAndAlphaBarArgumentsAreChecked() throws {
        XCTAssertTrue(luaError("ddpm.schedule.from_betas({0.1, 0.2, 1.5, 0.3})").contains(
            "test:2: ddpm.schedule.from_betas: "
                + "bad argument #1 (beta 3, of timestep 2, is 1.5: betas must be in (0, 1))"))
        XCTAssertTrue(luaError("ddpm.schedule.from_betas(ddpm.tensor.from({0.1, 0}))").contains(
            "bad argument #1 (beta 2, of timestep 1, is 0.0: betas must be in (0, 1))"))
        XCTAssertTrue(luaError("ddpm.schedule.from_alpha_bar(function(u) return 0.5 * (1 - u) end, 10)").contains(
            "test:2: ddpm.schedule.from_alpha_bar: bad argument #1 "
                + "(fn(0) must be 1, alpha-bar before any noise; got 0.5: divide by fn(0))"))
        let host = try runLua("""
            local s = ddpm.schedule.from_alpha_bar(function(u) return 1 - u * 0.5 end, 4)
            local b = s:betas()
            betas_type, betas_count, first = type(b), #b, b[1]
            named = ddpm.schedule.from_betas(b, {name = "halving"}).name
            plain = ddpm.schedule.from_betas(b).name
            """)
        XCTAssertEqual(host.global("betas_type") as? String, "table")
        XCTAssertEqual(host.global("betas_count") as? Double, 4)
        XCTAssertEqual(try XCTUnwrap(host.global("first") as? Double), 1 - 0.875, accuracy: 1e-15)
        XCTAssertEqual(host.global("named") as? String, "halving")
        XCTAssertEqual(host.global("plain") as? String, "custom")
    }

    /// Weights carry their schedule (`betas`, `schedule`, `schedule_steps`); ddpm.load_model
    /// attaches it, ddpm.schedule.from_weights reads it, and forward rejects timesteps past it.
    func testWeightsCarryTheirScheduleAndForwardChecksTimesteps() throws {
        let path = dir + "/w.safetensors", bare = dir + "/bare.safetensors"
        let host = try runLua("""
            local m = ddpm.unet{base = 8, levels = 1, time_dim = 8, attention = {false}, \
            attention_mid = false, image_size = 8}
            local s = ddpm.schedule.from_betas({0.1, 0.2, 0.3, 0.4, 0.5}, {name = "five"})
            m:save('\(path)', s:metadata())
            m:save('\(bare)')
            local loaded = ddpm.load_model('\(path)')
            local from_file = ddpm.schedule.from_weights('\(path)')
            name, steps, same = loaded.schedule.name, loaded.schedule.steps, from_file:alpha_bar(4) == s:alpha_bar(4)
            bare_name, bare_steps = ddpm.load_model('\(bare)').schedule.name, \
            ddpm.schedule.from_weights('\(bare)').steps
            fresh_has_none = m.schedule == nil
            local x = ddpm.tensor.zeros({2, 1, 8, 8})
            loaded:forward(x, {0, 4}, {1, 2})
            local ok, err = pcall(loaded.forward, loaded, x, {4, 5}, {1, 2})
            past_end = err
            m.schedule = s
            local ok2, err2 = pcall(function() return m(x, 7) end)
            set_error = err2
            m.schedule = nil
            m:forward(x, 7)
            """)
        XCTAssertEqual(host.global("name") as? String, "five")
        XCTAssertEqual(host.global("steps") as? Double, 5)
        XCTAssertEqual(host.global("same") as? Bool, true)
        XCTAssertEqual(host.global("bare_name") as? String, "linear")
        XCTAssertEqual(host.global("bare_steps") as? Double, 1000)
        XCTAssertEqual(host.global("fresh_has_none") as? Bool, true)
        XCTAssertEqual(host.global("past_end") as? String,
                       "Model:forward: timestep 5 out of range [0, 5) of the model's schedule (five, 5 steps)")
        XCTAssertTrue((host.global("set_error") as? String ?? "").contains("timestep 7 out of range [0, 5)"))
        let meta = try SafeTensors.inspect(path).metadata
        XCTAssertEqual(meta["schedule"], "five")
        XCTAssertEqual(meta["schedule_steps"], "5")
        XCTAssertEqual(meta["betas"],
                       "0.10000000000000001,0.20000000000000001,0.29999999999999999,0.40000000000000002,0.5")
        XCTAssertTrue(luaError("ddpm.schedule.from_weights('\(dir)/none.safetensors')")
            .contains("none.safetensors: no such file"))
    }

    /// `--config tiny` is scripts/configs/tiny.lua; a config's schedule file is found next to the
    /// config (not in the working folder), and the trained weights name the schedule after it.
    func testConfigNamesAndScheduleFilesNextToTheConfig() throws {
        try requireMNIST()
        try FileManager.default.createDirectory(atPath: dir + "/cfg", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
        try """
            return function(spec)
              return ddpm.schedule.linear{steps = spec.steps, beta_start = 1e-3, beta_end = 0.05}
            end
            """.write(toFile: dir + "/cfg/steep.lua", atomically: true, encoding: .utf8)
        try """
            return {
              model = {base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false, image_size = 8},
              schedule = {file = "steep.lua", steps = 50},
              train = {batch = 2, steps = 1},
            }
            """.write(toFile: dir + "/cfg/mine.lua", atomically: true, encoding: .utf8)
        let host = try runLua("""
            local common = require("lib.common")
            tiny = common.config_path("tiny")
            tiny_model_base = common.load_config("tiny").model.base
            """)
        XCTAssertEqual(host.global("tiny") as? String, scriptsDir + "/configs/tiny.lua")
        XCTAssertNotNil(host.global("tiny_model_base") as? Double)

        let r = try runDDPM(["train", "--config", "../cfg/mine.lua", "--out", dir + "/run", "--data", mnistDir],
                            in: dir + "/elsewhere")
        XCTAssertEqual(r.status, 0, r.stderr)
        let meta = try SafeTensors.inspect(dir + "/run/model.safetensors").metadata
        XCTAssertEqual(meta["schedule"], "steep.lua")
        XCTAssertEqual(meta["schedule_steps"], "50")
        XCTAssertEqual(meta["betas"]?.split(separator: ",").first, "0.001")

        try "return {schedule = {file = 'nowhere.lua'}}"
            .write(toFile: dir + "/cfg/lost.lua", atomically: true, encoding: .utf8)
        let lost = try runDDPM(["train", "--config", dir + "/cfg/lost.lua", "--out", dir + "/run2"],
                               in: dir + "/elsewhere")
        XCTAssertEqual(lost.status, 1)
        XCTAssertEqual(lost.stderr, "\(dir)/cfg/lost.lua: schedule file nowhere.lua found neither in \(dir)/cfg/ "
                       + "nor in the bundled scripts folder\n")
    }
}
