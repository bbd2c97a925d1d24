# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Subject and subjectAltName (module_utils/issuance.py SUBJECT_ARGS).
    DOCUMENTATION = r'''
options:
  subject:
    description:
      - "Distinguished name as a dictionary of attribute to value, in the order written
        (e.g. C({C: GB, ST: England, O: Alice Ltd, CN: ocsp.example.com}))."
      - Short or long attribute names (C(C)/C(countryName), C(ST), C(L), C(O), C(OU), C(CN),
        C(emailAddress), C(DC), C(serialNumber), ...) or dotted OIDs. A list value gives
        the attribute several times (e.g. several C(OU)).
    type: dict
  subject_alt_name:
    description:
      - Subject alternative names, each C(DNS:name), C(IP:address), C(email:address) or
        C(URI:uri).
    type: list
    elements: str
'''
