#!/usr/bin/env python3
"""Write the initial dialplans/<platform>.yaml for the province and the 16 prefectures.

These are starting points that follow GB/T 33358 (flat, short greeting, a human at once, 0 for
a human from any menu, an emergency hint, voicemail when closed). Administrators edit the YAML
files afterwards; run this only to create missing files (it never overwrites one).
"""

from __future__ import annotations

import sys
from pathlib import Path

PLATFORMS = [
    # id, name, area code, local holidays (name, from, to)
    ("province", "云南省12345政务服务便民热线省平台", "0871", []),
    ("kunming", "昆明市12345政务服务便民热线", "0871", []),
    ("qujing", "曲靖市12345政务服务便民热线", "0874", []),
    ("yuxi", "玉溪市12345政务服务便民热线", "0877", []),
    ("baoshan", "保山市12345政务服务便民热线", "0875", []),
    ("zhaotong", "昭通市12345政务服务便民热线", "0870", []),
    ("lijiang", "丽江市12345政务服务便民热线", "0888", []),
    ("puer", "普洱市12345政务服务便民热线", "0879", []),
    ("lincang", "临沧市12345政务服务便民热线", "0883", []),
    ("chuxiong", "楚雄州12345政务服务便民热线", "0878", [("火把节", "2026-08-06", "2026-08-08")]),
    ("honghe", "红河州12345政务服务便民热线", "0873", []),
    ("wenshan", "文山州12345政务服务便民热线", "0876", []),
    ("xishuangbanna", "西双版纳州12345政务服务便民热线", "0691", [("泼水节", "2026-04-13", "2026-04-15")]),
    ("dali", "大理州12345政务服务便民热线", "0872", [("三月街民族节", "2026-05-01", "2026-05-07")]),
    ("dehong", "德宏州12345政务服务便民热线", "0692", []),
    ("nujiang", "怒江州12345政务服务便民热线", "0886", []),
    ("diqing", "迪庆州12345政务服务便民热线", "0887", []),
]

TEMPLATE = """\
# {name} — IVR dialplan (see docs/dialplans.md). Check with: hotline12345 dialplan check
platform: {id}
name: {name}
area_code: "{area}"

# Manual service hours (Asia/Shanghai) per day type: 7×12 every day by default.
# Day types come from chinese-calendar (holidays and 调休 make-up working days) plus local_holidays.
hours:
  workday: ["08:00-20:00"]
  restday: ["08:00-20:00"]
  holiday: ["08:00-20:00"]
{holidays}
prompts:
  welcome: 您好，欢迎致电{short}一二三四五政务服务便民热线。
  holiday_notice: 节假日期间热线照常服务。
  main_menu: 如遇紧急情况，请挂机拨打一一零、一一九、一二零或一二二。咨询请按一，投诉举报请按二，方言服务请按九，人工服务请按零。
  invalid: 输入有误，请重新选择。
  busy_leave_message: 话务员均忙，请在提示音后留言，我们会尽快回复您。
  closed_leave_message: 现在是非人工服务时间，请在提示音后留言，我们会在工作时间尽快处理。
  goodbye: 感谢您的来电，再见。

start: entry
nodes:
  entry: {{kind: hours, open: welcome, holiday: welcome_holiday, closed: closed}}
  welcome: {{kind: play, prompts: [welcome], next: main_menu}}
  welcome_holiday: {{kind: play, prompts: [welcome, holiday_notice], next: main_menu}}
  main_menu:
    kind: menu
    prompt: main_menu
    options:
      "0": to_seat
      "1": consultation
      "2": complaint
      "9": dialect
    timeout_s: 5
    retries: 1
    invalid_prompt: invalid
    default: to_seat          # no key pressed: straight to a human
  consultation: {{kind: set, tags: {{category: consultation}}, next: to_seat}}
  complaint: {{kind: set, tags: {{category: complaint}}, next: to_seat}}
  dialect: {{kind: set, tags: {{language: dialect}}, next: to_seat}}
  to_seat: {{kind: queue, queue: general, skills: [language], max_wait_s: 300, next: busy_voicemail}}  # 方言: dialect seats first
  busy_voicemail: {{kind: voicemail, prompt: busy_leave_message, next: goodbye}}
  closed: {{kind: voicemail, prompt: closed_leave_message, next: goodbye}}
  goodbye: {{kind: hangup, prompt: goodbye}}
"""


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "dialplans")
    out.mkdir(parents=True, exist_ok=True)
    for platform_id, name, area, holidays in PLATFORMS:
        target = out / f"{platform_id}.yaml"
        if target.exists():
            continue
        lines = "".join(f"  - {{name: {h}, from: {a}, to: {b}}}\n" for h, a, b in holidays)
        holiday_block = f"local_holidays:\n{lines}" if lines else "local_holidays: []\n"
        short = "云南省" if platform_id == "province" else name.split("12345")[0]
        target.write_text(
            TEMPLATE.format(id=platform_id, name=name, area=area, holidays=holiday_block, short=short), encoding="utf-8"
        )
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
