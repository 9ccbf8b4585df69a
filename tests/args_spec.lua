-- sluice.args: argparse parsers with sluice's conventions (usage errors
-- exit 2, --help exits 0, --quiet on every parser, number converters).
local H = require "helper"
local args = require("sluice").args

local tmp
setup(function() tmp = H.tmpdir() end)
teardown(function() os.execute("rm -rf " .. H.q(tmp)) end)

-- a script with a small command line, run as a child process
local SCRIPT = [[
local sluice = require "sluice"
local cli = sluice.args.parser(nil, "Counts things.")
cli:argument("n", "How many."):args("?"):convert(sluice.args.integer(1))
cli:option("--seed", "The seed.", "7"):argname("S"):convert(sluice.args.integer())
cli:option("--ratio", "A ratio."):convert(sluice.args.number(0))
cli:flag("--check", "Check.")
local a = cli:parse()
if a.n == 13 then cli:error("13 is unlucky") end
print(a.n, a.seed, a.ratio, a.check, a.quiet, sluice.progress.quiet())
]]

local function run(argv, env)
  H.write(tmp .. "/count.lua", SCRIPT)
  return H.sluice(H.q(tmp .. "/count.lua") .. " " .. argv, env)
end

local USAGE = "Usage: count.lua [-h] [--seed S] [--ratio <ratio>] [--check] [--quiet]\n"
  .. "       [<n>]\n"

describe("sluice.args.parser", function()
  it("parses the script's arguments into typed values, defaults applied", function()
    local code, out, err = run("12 --seed 3 --ratio 0.5 --check")
    assert.are.equal(0, code, err)
    assert.are.equal("12\t3\t0.5\ttrue\tnil\tfalse\n", out)
    code, out, err = run("")
    assert.are.equal(0, code, err)
    assert.are.equal("nil\t7\tnil\tnil\tnil\tfalse\n", out)
  end)

  it("parses a list given to parse(), in this process", function()
    local cli = args.parser("x.lua")
    cli:argument("files"):args("*")
    cli:option("--rows"):convert(args.integer(0))
    local a = cli:parse { "a.csv", "b.csv", "--rows", "40" }
    assert.are.same({ "a.csv", "b.csv" }, a.files)
    assert.are.equal(40, a.rows)
  end)

  it("--quiet turns live progress off, as sluice --quiet does", function()
    local code, out, err = run("--quiet")
    assert.are.equal(0, code, err)
    assert.are.equal("nil\t7\tnil\tnil\ttrue\ttrue\n", out)
  end)

  it("--help prints the help on stdout and exits 0", function()
    local code, out, err = run("--help")
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.are.equal(USAGE .. "\nCounts things.\n", out:sub(1, #USAGE + 16))
    assert.truthy(out:find("\n   --seed S              The seed. (default: 7)\n", 1, true), out)
    assert.truthy(out:find("\n   --quiet               No live progress lines", 1, true), out)
  end)

  it("a bad command line prints the usage and what was wrong, and exits 2", function()
    for argv, why in pairs {
      ["--frob"] = "unknown option '--frob'",
      ["x"] = "'x' is not an integer",
      ["0"] = "0 is less than 1",
      ["--seed 1.5"] = "'1.5' is not an integer",
      ["--ratio=-1"] = "-1 is less than 0",
      ["--seed"] = "option '--seed' requires an argument",
      ["1 2"] = "too many arguments",
      ["13"] = "13 is unlucky", -- cli:error() from the script
    } do
      local code, out, err = run(argv)
      assert.are.equal(2, code, argv)
      assert.are.equal("", out, argv)
      assert.are.equal(USAGE .. "\nError: " .. why .. "\n", err, argv)
    end
  end)

  it("has converters that say what was wrong", function()
    assert.are.equal(5, args.integer()("5"))
    assert.are.equal(-5, args.integer()("-5"))
    assert.are.same({ nil, "'5.5' is not an integer" }, { args.integer()("5.5") })
    assert.are.same({ nil, "'inf' is not an integer" }, { args.integer()("inf") })
    assert.are.same({ nil, "0 is less than 1" }, { args.integer(1)("0") })
    assert.are.equal(0.25, args.number(0)("0.25"))
    assert.are.same({ nil, "'nan' is not a number" }, { args.number()("nan") })
    assert.are.same({ nil, "'' is not a number" }, { args.number()("") })
  end)
end)
