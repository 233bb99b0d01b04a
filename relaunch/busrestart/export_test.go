package busrestart

// UnitFromPath is unitFromPath, for the tests of package busrestart_test.
var UnitFromPath = unitFromPath
