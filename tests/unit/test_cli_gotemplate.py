"""-o go-template against kubectl 1.32.5's own output.

Every expected value below was printed by real kubectl (v1.32.5) run against a
fake API server that served exactly the objects of cli_kubectl_objects.py;
the comment above each case is the kubectl command that printed it (stdout,
then stderr; a failing template also writes a debugging dump to stdout).
"""
from __future__ import annotations

import pytest

from kubemu.cli import common, output
from kubemu.cli.common import CliError
from tests.unit.cli_kubectl_objects import CONFIGMAP, pod, pod_list

LIST = pod_list()
KUARD = pod("kuard")
TINY = CONFIGMAP


def render(output_flag: str, data: dict, capsys) -> tuple[str, str]:
    """(stdout, stderr) as kubemu prints them for `-o output_flag`."""
    try:
        text = output.make_printer(output_flag).render(data)
    except CliError as exc:
        message = common.format_error(exc)
        return capsys.readouterr().out, message if message.endswith("\n") else message + "\n"
    return capsys.readouterr().out + text, ""


@pytest.mark.parametrize("data, template, out, err", [
    # kubectl get pod kuard -o 'go-template={{.metadata.name}}'
    pytest.param(KUARD, '{{.metadata.name}}',
                 'kuard',
                 '', id='field'),
    # kubectl get pods -o 'go-template={{range .items}}{{.metadata.name}}{{"\n"}}{{end}}'
    pytest.param(LIST, '{{range .items}}{{.metadata.name}}{{"\\n"}}{{end}}',
                 'kuard\nnginx\ntwo\n',
                 '', id='range'),
    # kubectl get pods -o 'go-template={{range $i, $p := .items}}{{$i}}:{{$p.metadata.name}} {{end}}'
    pytest.param(LIST, '{{range $i, $p := .items}}{{$i}}:{{$p.metadata.name}} {{end}}',
                 '0:kuard 1:nginx 2:two ',
                 '', id='range-vars'),
    # kubectl get pod kuard -o 'go-template={{range $k, $v := .metadata.labels}}{{$k}}={{$v}},{{end}}'
    pytest.param(KUARD, '{{range $k, $v := .metadata.labels}}{{$k}}={{$v}},{{end}}',
                 'app=kuard,tier=front,',
                 '', id='range-map'),
    # kubectl get pod kuard -o 'go-template={{range .nope}}x{{else}}empty{{end}}'
    pytest.param(KUARD, '{{range .nope}}x{{else}}empty{{end}}',
                 'empty',
                 '', id='range-else'),
    # kubectl get pods -o 'go-template={{range .items}}{{if eq .metadata.name "nginx"}}{{continue}}{{end}}{{.metadata.name}}{{end}}|{{range .items}}{{break}}{{end}}'
    pytest.param(LIST, '{{range .items}}{{if eq .metadata.name "nginx"}}{{continue}}{{end}}{{.metadata.name}}{{end}}|{{range .items}}{{break}}{{end}}',
                 'kuardtwo|',
                 '', id='range-break-continue'),
    # kubectl get pods -o 'go-template={{range .items}}{{if .metadata.labels.env}}{{.metadata.name}} has env{{else if eq .metadata.name "nginx"}}N{{else}}-{{end}};{{end}}'
    pytest.param(LIST, '{{range .items}}{{if .metadata.labels.env}}{{.metadata.name}} has env{{else if eq .metadata.name "nginx"}}N{{else}}-{{end}};{{end}}',
                 '-;N;two has env;',
                 '', id='if-else-if'),
    # kubectl get pod kuard -o 'go-template={{with .metadata}}{{.name}}/{{.namespace}}{{end}} {{with .nope}}x{{else}}none{{end}}'
    pytest.param(KUARD, '{{with .metadata}}{{.name}}/{{.namespace}}{{end}} {{with .nope}}x{{else}}none{{end}}',
                 'kuard/default none',
                 '', id='with'),
    # kubectl get pod kuard -o 'go-template={{.spec.terminationGracePeriodSeconds}} {{printf "%d" .spec.terminationGracePeriodSeconds}} {{if eq .spec.terminationGracePeriodSeconds 30}}yes{{end}}'
    pytest.param(KUARD, '{{.spec.terminationGracePeriodSeconds}} {{printf "%d" .spec.terminationGracePeriodSeconds}} {{if eq .spec.terminationGracePeriodSeconds 30}}yes{{end}}',
                 '30 30 yes',
                 '', id='numbers'),
    # kubectl get pod kuard -o 'go-template={{.metadata.labels}} {{.spec.containers}} {{.nope}} {{.metadata.nope}}'
    pytest.param(KUARD, '{{.metadata.labels}} {{.spec.containers}} {{.nope}} {{.metadata.nope}}',
                 'map[app:kuard tier:front] [map[image:gcr.io/kuar-demo/kuard-amd64:blue name:web ports:[map[containerPort:80 protocol:TCP]] resources:map[requests:map[cpu:250m memory:128Mi]]]] <no value> <no value>',
                 '', id='maps-and-lists'),
    # kubectl get pod kuard -o 'go-template={{index .metadata.labels "app"}} {{len .metadata.labels}} {{(index .spec.containers 0).name}} {{index .spec.containers 0 "image"}} {{index .metadata.labels "nope"}}'
    pytest.param(KUARD, '{{index .metadata.labels "app"}} {{len .metadata.labels}} {{(index .spec.containers 0).name}} {{index .spec.containers 0 "image"}} {{index .metadata.labels "nope"}}',
                 'kuard 2 web gcr.io/kuar-demo/kuard-amd64:blue <no value>',
                 '', id='index-len'),
    # kubectl get pods -o 'go-template={{len .items}} {{.items | len}}'
    pytest.param(LIST, '{{len .items}} {{.items | len}}',
                 '3 3',
                 '', id='len-pipe'),
    # kubectl get pods -o 'go-template={{range .items}}{{.metadata.name | printf "%-8s|"}}{{end}}'
    pytest.param(LIST, '{{range .items}}{{.metadata.name | printf "%-8s|"}}{{end}}',
                 'kuard   |nginx   |two     |',
                 '', id='printf'),
    # kubectl get pod kuard -o 'go-template={{printf "%5.2f|%x|%v|%t|%08d|%-5d|%+d|%q" 3.14159 255 .metadata.labels true 42 7 5 .metadata.name}}'
    pytest.param(KUARD, '{{printf "%5.2f|%x|%v|%t|%08d|%-5d|%+d|%q" 3.14159 255 .metadata.labels true 42 7 5 .metadata.name}}',
                 ' 3.14|ff|map[app:kuard tier:front]|true|00000042|7    |+5|"kuard"',
                 '', id='printf-verbs'),
    # kubectl get pod kuard -o 'go-template={{printf "%d" .metadata.name}}|{{printf "%s %s" "a"}}|{{printf "%s" "a" "b"}}|{{printf "%s" 3}}|{{printf "%s|%v" .nope .nope}}'
    pytest.param(KUARD, '{{printf "%d" .metadata.name}}|{{printf "%s %s" "a"}}|{{printf "%s" "a" "b"}}|{{printf "%s" 3}}|{{printf "%s|%v" .nope .nope}}',
                 '%!d(string=kuard)|a %!s(MISSING)|a%!(EXTRA string=b)|%!s(int=3)|%!s(<nil>)|<nil>',
                 '', id='printf-mismatch'),
    # kubectl get pod kuard -o 'go-template={{print 1 2 "a" "b" 3}} {{println "x"}}|{{and 1 0}} {{or 0 "" "z"}} {{not true}} {{or .nope "d"}}'
    pytest.param(KUARD, '{{print 1 2 "a" "b" 3}} {{println "x"}}|{{and 1 0}} {{or 0 "" "z"}} {{not true}} {{or .nope "d"}}',
                 '1 2ab3 x\n|0 z false d',
                 '', id='print-println'),
    # kubectl get pod kuard -o 'go-template={{with .metadata}}{{.name}}{{end}} {{- " trimmed" -}}   {{"x"}} {{- /* c */ -}} !'
    pytest.param(KUARD, '{{with .metadata}}{{.name}}{{end}} {{- " trimmed" -}}   {{"x"}} {{- /* c */ -}} !',
                 'kuard trimmedx!',
                 '', id='trim-comment'),
    # kubectl get pod kuard -o 'go-template={{exists . "metadata" "name"}} {{exists . "nope"}} {{"YWJj" | base64decode}}'
    pytest.param(KUARD, '{{exists . "metadata" "name"}} {{exists . "nope"}} {{"YWJj" | base64decode}}',
                 'true false abc',
                 '', id='exists-base64'),
    # kubectl get pod kuard -o 'go-template={{$x := 1}}{{$x = 2}}{{$x}}{{if true}}{{$x = 3}}{{end}}{{$x}} {{$n := .metadata.name}}{{with .spec}}{{$n}}{{$.kind}}{{end}}'
    pytest.param(KUARD, '{{$x := 1}}{{$x = 2}}{{$x}}{{if true}}{{$x = 3}}{{end}}{{$x}} {{$n := .metadata.name}}{{with .spec}}{{$n}}{{$.kind}}{{end}}',
                 '23 kuardPod',
                 '', id='variables'),
    # kubectl get pod kuard -o 'go-template={{eq 1 1 2}} {{ne "a" "b"}} {{lt 1.5 2.5}} {{eq .metadata.name "kuard" "x"}} {{eq .nope "x"}} {{le 2 2}} {{gt 3 2}} {{ge 1 2}}'
    pytest.param(KUARD, '{{eq 1 1 2}} {{ne "a" "b"}} {{lt 1.5 2.5}} {{eq .metadata.name "kuard" "x"}} {{eq .nope "x"}} {{le 2 2}} {{gt 3 2}} {{ge 1 2}}',
                 'true true true true false true true false',
                 '', id='compare'),
    # kubectl get pod kuard -o 'go-template={{ "a" | printf "%s-%s" "b" }} {{.nope | printf "%v"}}'
    pytest.param(KUARD, '{{ "a" | printf "%s-%s" "b" }} {{.nope | printf "%v"}}',
                 'b-a <nil>',
                 '', id='pipe-final-arg'),
    # kubectl get cm tiny -o 'go-template={{$}}'
    pytest.param(TINY, '{{$}}',
                 'map[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]',
                 '', id='dollar'),
    # kubectl get pods -o 'go-template={{.items'
    pytest.param(LIST, '{{.items',
                 '',
                 'error: error parsing template {{.items, template: output:1: unclosed action\n', id='err-parse-unclosed'),
    # kubectl get pod kuard -o 'go-template={{if .x}}a'
    pytest.param(KUARD, '{{if .x}}a',
                 '',
                 'error: error parsing template {{if .x}}a, template: output:1: unexpected EOF\n', id='err-parse-eof'),
    # kubectl get pod kuard -o 'go-template={{end}}'
    pytest.param(KUARD, '{{end}}',
                 '',
                 'error: error parsing template {{end}}, template: output:1: unexpected {{end}}\n', id='err-parse-end'),
    # kubectl get pod kuard -o 'go-template={{foo .x}}'
    pytest.param(KUARD, '{{foo .x}}',
                 '',
                 'error: error parsing template {{foo .x}}, template: output:1: function "foo" not defined\n', id='err-parse-function'),
    # kubectl get pod kuard -o 'go-template={{.status.containerStatuses[0]}}'
    pytest.param(KUARD, '{{.status.containerStatuses[0]}}',
                 '',
                 "error: error parsing template {{.status.containerStatuses[0]}}, template: output:1: bad character U+005B '['\n", id='err-parse-bad-char'),
    # kubectl get pod kuard -o 'go-template={{}}'
    pytest.param(KUARD, '{{}}',
                 '',
                 'error: error parsing template {{}}, template: output:1: missing value for command\n', id='err-parse-empty'),
    # kubectl get pod kuard -o 'go-template={{range $i, $c := .spec.containers}}{{$i}}{{end}}{{$i}}'
    pytest.param(KUARD, '{{range $i, $c := .spec.containers}}{{$i}}{{end}}{{$i}}',
                 '',
                 'error: error parsing template {{range $i, $c := .spec.containers}}{{$i}}{{end}}{{$i}}, template: output:1: undefined variable "$i"\n', id='err-parse-undefined-var'),
    # kubectl get cm tiny -o 'go-template={{.data.a.x}}'
    pytest.param(TINY, '{{.data.a.x}}',
                 'Error executing template: template: output:1:7: executing "output" at <.data.a.x>: can\'t evaluate field x in type interface {}. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{{.data.a.x}}\n\traw data was:\n\t\t{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}\n\tobject given to template engine was:\n\t\tmap[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]\n\n',
                 'error: error executing template "{{.data.a.x}}": template: output:1:7: executing "output" at <.data.a.x>: can\'t evaluate field x in type interface {}\n', id='err-exec-field'),
    # kubectl get cm tiny -o 'go-template=ok {{index .data 7}}'
    pytest.param(TINY, 'ok {{index .data 7}}',
                 'ok Error executing template: template: output:1:5: executing "output" at <index .data 7>: error calling index: value has type int; should be string. Printing more information for debugging the template:\n\ttemplate was:\n\t\tok {{index .data 7}}\n\traw data was:\n\t\t{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}\n\tobject given to template engine was:\n\t\tmap[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]\n\n',
                 'error: error executing template "ok {{index .data 7}}": template: output:1:5: executing "output" at <index .data 7>: error calling index: value has type int; should be string\n', id='err-exec-index'),
    # kubectl get cm tiny -o 'go-template={{if eq .data.a 1.0}}y{{end}}'
    pytest.param(TINY, '{{if eq .data.a 1.0}}y{{end}}',
                 'Error executing template: template: output:1:5: executing "output" at <eq .data.a 1.0>: error calling eq: incompatible types for comparison. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{{if eq .data.a 1.0}}y{{end}}\n\traw data was:\n\t\t{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}\n\tobject given to template engine was:\n\t\tmap[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]\n\n',
                 'error: error executing template "{{if eq .data.a 1.0}}y{{end}}": template: output:1:5: executing "output" at <eq .data.a 1.0>: error calling eq: incompatible types for comparison\n', id='err-exec-eq'),
    # kubectl get cm tiny -o 'go-template={{len 3}}'
    pytest.param(TINY, '{{len 3}}',
                 'Error executing template: template: output:1:2: executing "output" at <len 3>: error calling len: len of type int. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{{len 3}}\n\traw data was:\n\t\t{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}\n\tobject given to template engine was:\n\t\tmap[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]\n\n',
                 'error: error executing template "{{len 3}}": template: output:1:2: executing "output" at <len 3>: error calling len: len of type int\n', id='err-exec-len'),
    # kubectl get cm tiny -o 'go-template={{len .nope}}'
    pytest.param(TINY, '{{len .nope}}',
                 'Error executing template: template: output:1:2: executing "output" at <len .nope>: error calling len: reflect: call of reflect.Value.Type on zero Value. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{{len .nope}}\n\traw data was:\n\t\t{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}\n\tobject given to template engine was:\n\t\tmap[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]\n\n',
                 'error: error executing template "{{len .nope}}": template: output:1:2: executing "output" at <len .nope>: error calling len: reflect: call of reflect.Value.Type on zero Value\n', id='err-exec-len-missing'),
    # kubectl get cm tiny -o 'go-template={{.metadata.name "x"}}'
    pytest.param(TINY, '{{.metadata.name "x"}}',
                 'Error executing template: template: output:1:11: executing "output" at <.metadata.name>: name is not a method but has arguments. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{{.metadata.name "x"}}\n\traw data was:\n\t\t{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}\n\tobject given to template engine was:\n\t\tmap[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]\n\n',
                 'error: error executing template "{{.metadata.name \\"x\\"}}": template: output:1:11: executing "output" at <.metadata.name>: name is not a method but has arguments\n', id='err-exec-args'),
    # kubectl get cm tiny -o 'go-template={{"x" 1}}'
    pytest.param(TINY, '{{"x" 1}}',
                 'Error executing template: template: output:1:2: executing "output" at <"x">: can\'t give argument to non-function "x". Printing more information for debugging the template:\n\ttemplate was:\n\t\t{{"x" 1}}\n\traw data was:\n\t\t{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}\n\tobject given to template engine was:\n\t\tmap[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]\n\n',
                 'error: error executing template "{{\\"x\\" 1}}": template: output:1:2: executing "output" at <"x">: can\'t give argument to non-function "x"\n', id='err-exec-non-function'),
    # kubectl get cm tiny -o 'go-template={{range 3}}{{.}}{{end}}'
    pytest.param(TINY, '{{range 3}}{{.}}{{end}}',
                 'Error executing template: template: output:1:8: executing "output" at <3>: range can\'t iterate over 3. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{{range 3}}{{.}}{{end}}\n\traw data was:\n\t\t{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}\n\tobject given to template engine was:\n\t\tmap[apiVersion:v1 data:map[a:1 b:two] kind:ConfigMap metadata:map[name:tiny namespace:default]]\n\n',
                 'error: error executing template "{{range 3}}{{.}}{{end}}": template: output:1:8: executing "output" at <3>: range can\'t iterate over 3\n', id='err-exec-range'),
])
def test_go_template_matches_kubectl(data, template, out, err, capsys):
    assert render(f"go-template={template}", data, capsys) == (out, err)


@pytest.mark.parametrize("flag", ["template", "go-template-file", "templatefile"])
def test_template_aliases_and_files(flag, tmp_path, capsys):
    if flag.endswith("file"):
        path = tmp_path / "t.tmpl"
        path.write_text("{{.metadata.name}}")
        assert render(f"{flag}={path}", KUARD, capsys) == ("kuard", "")
    else:
        assert render(f"{flag}={{{{.kind}}}}", KUARD, capsys) == ("Pod", "")


def test_unsupported_actions_say_so(capsys):
    out, err = render('go-template={{define "x"}}{{end}}', KUARD, capsys)
    assert out == "" and "not supported" in err
