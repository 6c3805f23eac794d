"""The hpa-example stand-in (php-apache of the HPA walkthrough): the image
resolves to it, `apache2-foreground` runs it, and a request burns CPU."""
from __future__ import annotations

import pytest

from kubelet.runtime import images
from kubelet.runtime.demoapps import hpa_example


@pytest.mark.parametrize("image", ["registry.k8s.io/hpa-example",
                                   "registry.k8s.io/hpa-example:latest",
                                   "k8s.gcr.io/hpa-example"])
def test_the_walkthrough_image_resolves_to_the_stand_in(image):
    resolved = images.Catalog(images.builtin_entries()).resolve(image)
    assert resolved.entry.name == "hpa-example"
    assert images.container_argv(resolved, [], []) == ["apache2-foreground"]
    assert resolved.entry.programs["apache2-foreground"][-1].endswith("hpa_example.py")


def test_a_request_is_index_php_s_loop():
    # $x = 0.0001; for ($i = 0; $i <= 1000000; $i++) { $x += sqrt($x); }
    x = 0.0001
    for _ in range(11):
        x += x ** 0.5
    assert hpa_example.burn(10) == pytest.approx(x)
