# Reference copy, for tests only, of the FCN filter of the purification study:
# AleksandrGushchin/adversarial_purification at commit 01a2f25bece5bbe215cc913d0470e0d54b5d3d55,
# adversarial_purification/defenses/conv_filter/fcn.py, verbatim (the same class is in Guardians,
# msu-video-group/adversarial-defenses-for-iqa, metrics/defences/fcn/run.py). The study's defense builds it as
# FCN(3, 3, 64, norm_type='instance', act_type='relu') and clamps its output to [0, 1].
#
# The project declares `license = {text = "MIT"}` in its pyproject.toml (authors: Anna Chistyakova); it ships
# no LICENSE file. MIT License terms:
#
# Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
# documentation files (the "Software"), to deal in the Software without restriction, including without
# limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the
# Software, and to permit persons to whom the Software is furnished to do so, subject to the following
# conditions: The above copyright notice and this permission notice shall be included in all copies or
# substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS
# OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
# NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
# LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
# SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
# ruff: noqa
# fmt: off
import torch.nn as nn


class FCN(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, norm_type='batch', act_type='selu'):
        super(FCN, self).__init__()

        self.conv1 = nn.Conv2d(input_nc, 64, 3, 1, 1)
        self.conv2 = nn.Conv2d(64, 16, 3, 1, 1)
        self.conv3 = nn.Conv2d(16, 3, 3, 1, 1)

        if norm_type == 'batch':
            self.norm = nn.BatchNorm2d(16)
            self.norm2 = nn.BatchNorm2d(8)
        elif norm_type == 'instance':
            self.norm = nn.InstanceNorm2d(16)
            self.norm2 = nn.InstanceNorm2d(8)
        self.leaky_relu = nn.LeakyReLU(0.2, True)

        if act_type == 'selu':
            self.act = nn.SELU(True)
        else:
            self.act = nn.ReLU(True)

        self.dropout = nn.Dropout(0.5)

        self.tanh = nn.Tanh()

    def forward(self, inputs):
        # Encoder
        # Convolution layers:
        # input is (nc) x 512 x 1024
        e1 = self.conv1(inputs)
        # print(f'e1 {e1.shape}')
        # state size is (ngf) x 256 x 512
        e2 = self.norm2(self.conv2(self.leaky_relu(e1)))
        # print(f'e2 {e2.shape}')
        # state size is (ngf x 2) x 128 x 256
        e3 = self.conv3(self.leaky_relu(e2))
        # print(f'e3 {e3.shape}')

        output = self.tanh(e3)
        return output
