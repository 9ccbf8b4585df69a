local args = require("sluice").args

describe("sluice.args.parse", function()
  local spec = { usage = "usage: x.lua [n] [--seed N] [--check]",
                 options = { seed = "number", name = "string", check = "flag" }, positional = 1 }

  it("reads options, flags and positional numbers", function()
    local a = args.parse({ "12", "--seed", "7", "--check", "--name", "shop" }, spec)
    assert.are.same({ 12, seed = 7, check = true, name = "shop" }, a)
    assert.are.same({}, args.parse({}, spec))
  end)

  it("names what was wrong after the usage line", function()
    local function err(list)
      local ok, e = pcall(args.parse, list, spec)
      assert.is_false(ok)
      return e
    end
    assert.are.equal("usage: x.lua [n] [--seed N] [--check]  (unknown argument --frob)", err { "--frob" })
    assert.are.equal("usage: x.lua [n] [--seed N] [--check]  (--seed needs a number)", err { "--seed", "x" })
    assert.are.equal("usage: x.lua [n] [--seed N] [--check]  (--seed needs a value)", err { "--seed" })
    assert.are.equal("usage: x.lua [n] [--seed N] [--check]  (unknown argument 5)", err { "4", "5" })
  end)
end)
