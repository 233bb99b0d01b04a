# fish completion for busmedic. Printed by "busmedic completion fish";
# installed as share/fish/vendor_completions.d/busmedic.fish. It asks
# busmedic itself ("busmedic __complete WORD... CURRENT") for the commands,
# flags, rule ids and casualty ids, so that it never goes stale.

function __busmedic_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l out ($words[1] __complete -- $words[2..-1] $cur 2>/dev/null)
    if test "$out[1]" = :file
        __fish_complete_path $cur
        return
    end
    printf '%s\n' $out
end

complete -c busmedic -f -a '(__busmedic_complete)'
